//! `opsledger backup`: a consistent copy of a live SQLite store whose audit chain is verified,
//! and, for PostgreSQL, the pg_dump route it explains, restored and verified for real.
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common;
use common::scratch::{bare, stderr, stdout, Scratch};

/// The entry count in `audit chain verified: N entries` (or the backup's longer line).
fn verified_entries(text: &str) -> u64 {
    let tail = text
        .split("verified: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `verified:` in {text:?}"));
    tail.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn backup_copies_a_live_store_and_verifies_the_copy() {
    let s = Scratch::new();
    for i in 0..5 {
        let out = s.exec("console:alice", &format!("incident raise Disk {i} full"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Commands keep committing from another process while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (stop, db) = (stop.clone(), s.db_url());
        let dir = s.path("");
        move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = bare(
                    &dir,
                    &["exec", "--as", "console:bob", "incident raise Busy"],
                )
                .env("OPSLEDGER_DATABASE_URL", &db)
                .stdin(Stdio::null())
                .output()
                .unwrap();
                assert!(out.status.success(), "{}", stderr(&out));
                n += 1;
            }
            n
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let copy = s.path("copy.db");
    let out = s.run(&["backup", "--out", copy.to_str().unwrap()]);
    stop.store(true, Ordering::Relaxed);
    let during = writer.join().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("backup written to {}", copy.display())),
        "{text}"
    );
    assert!(during > 0, "the writer ran during the backup");

    // The copy is a store of its own: it verifies, and holds the records taken before it.
    let on_copy = |args: &[&str]| {
        bare(&s.path(""), args)
            .env(
                "OPSLEDGER_DATABASE_URL",
                format!("sqlite://{}", copy.display()),
            )
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let verify = on_copy(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert_eq!(verified_entries(&stdout(&verify)), verified_entries(&text));
    assert!(verified_entries(&text) >= 5);
    let shown = on_copy(&["exec", "--as", "console:carol", "incident show INC-5"]);
    assert!(stdout(&shown).contains("Disk 4 full"), "{}", stdout(&shown));
    // The live store went on past the copy.
    let live = s.run(&["audit", "verify"]);
    assert!(verified_entries(&stdout(&live)) >= verified_entries(&text));

    // A backup never overwrites.
    let again = s.run(&["backup", "--out", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn backup_of_a_missing_database_says_so_and_creates_nothing() {
    let s = Scratch::new();
    let out = s.run(&["backup", "--out", s.path("copy.db").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot open OPSLEDGER_DATABASE_URL"),
        "{}",
        stderr(&out)
    );
    assert!(!s.db().exists() && !s.path("copy.db").exists());
}

/// PostgreSQL: `backup` says how to use pg_dump; following its words restores a database whose
/// audit chain verifies with the same entries.
#[tokio::test]
async fn backup_on_postgres_explains_pg_dump_and_the_restored_copy_verifies() {
    let Some(db) = common::postgres_db().await else {
        return;
    };
    let restored = common::postgres_db().await.expect("a second database");
    let s = Scratch::new();
    let on = |url: &str, args: &[&str]| {
        bare(&s.path(""), args)
            .env("OPSLEDGER_DATABASE_URL", url)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for i in 0..3 {
        let out = on(
            db.url(),
            &[
                "exec",
                "--as",
                "console:alice",
                &format!("incident raise Db {i}"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let dump = s.path("store.dump");
    let out = on(db.url(), &["backup", "--out", dump.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing is written for PostgreSQL"
    );
    let help = stderr(&out);
    assert!(help.contains("pg_dump --format=custom --file"), "{help}");
    assert!(help.contains("pg_restore --no-owner --dbname"), "{help}");
    assert!(help.contains("opsledger audit verify"), "{help}");
    assert!(!dump.exists());

    // Follow it: pg_dump, pg_restore into a fresh database, audit verify there.
    let run = |cmd: &mut Command| {
        let o = cmd
            .output()
            .expect("pg tools are installed (postgresql-client)");
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(db.url()));
    run(Command::new("pg_restore")
        .args(["--no-owner", "--dbname"])
        .arg(restored.url())
        .arg(&dump));
    let original = on(db.url(), &["audit", "verify"]);
    let copy = on(restored.url(), &["audit", "verify"]);
    assert!(copy.status.success(), "{}", stdout(&copy));
    assert_eq!(
        verified_entries(&stdout(&copy)),
        verified_entries(&stdout(&original))
    );
    assert!(verified_entries(&stdout(&copy)) >= 3);
}
