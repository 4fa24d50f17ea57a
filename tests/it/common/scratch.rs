//! Running the `opsledger` binary as a user would: a scratch working directory with its own
//! database, none of the host's settings, and helpers for the output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A scratch directory where every `opsledger` process runs, with its database at `x.db`.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("x.db")
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }

    /// Writes `text` to `name` in the scratch directory.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write file");
    }

    /// `opsledger ARGS` with this directory's database and none of the host's settings
    /// (`OPSLEDGER_*` and the platforms' variables).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = bare(self.dir.path(), args);
        cmd.env("OPSLEDGER_DATABASE_URL", self.db_url())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run opsledger")
    }

    pub fn exec(&self, actor: &str, text: &str) -> Output {
        self.run(&["exec", "--as", actor, text])
    }
}

/// `opsledger ARGS` run in `dir` with none of the host's settings (`OPSLEDGER_*` and the
/// platforms' variables).
pub fn bare(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsledger"));
    cmd.args(args).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if ["OPSLEDGER_", "SLACK_", "DISCORD_", "GITHUB_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
