//! Evidence at scale: seeds 1,000,000 incidents and 10,000,000 audit entries (SQLite), then
//! times the service report for a month (from its rollups, and folded from every record in the
//! same run, as a ratio), the open-incident dashboard page, `audit verify` and
//! the evidence pack export, and prints the process's resident memory around the export.
//!
//! `cargo bench --bench evidence` for the full sizes; `BENCH_INCIDENTS` and `BENCH_AUDIT`
//! override them. `cargo test --all-targets` runs it as a small smoke test.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::Instant;

use chrono::{Duration, Utc};
use opsledger::domain::audit::AuditEntry;
use opsledger::domain::ids::{Actor, Kind, RecordId};
use opsledger::domain::lifecycle::NewIncident;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::{Incident, Record};
use opsledger::domain::report::{contribution, Rollups};
use opsledger::store::WriteSet;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this process has used so far, user and system, in seconds (Linux: `/proc/self/stat`
/// counts it in USER_HZ ticks, 100 a second on every Linux the project runs on).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// "N core-seconds of CPU, M of the machine's C cores busy on average" over a timed step.
fn cpu_note(cpu: f64, wall: f64) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{cpu:.1} core-seconds of CPU, {:.2} of {cores} cores busy on average",
        cpu / wall.max(f64::EPSILON)
    )
}

/// Resident and peak resident memory of this process, in MiB (Linux).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:") / 1024, kib("VmHWM:") / 1024)
}

/// Writes `incidents` incidents over the 90 days before now (one in ten still open) and
/// `audit` chained audit entries, in large transactions straight through the store.
async fn seed(store: &dyn opsledger::store::Store, incidents: u64, audit: u64) {
    let policy = Policy::default();
    let now = Utc::now();
    let reporter = Actor::parse("console:seed").unwrap();
    const BATCH: u64 = 5_000;
    let per_incident = audit / incidents.max(1);
    let mut extra_audit = audit - per_incident * incidents;
    let mut n = 0;
    while n < incidents {
        let mut tx = store.begin().await.unwrap();
        let (mut seq, mut hash) = tx.head();
        let mut w = WriteSet::default();
        let mut rollups = Rollups::default();
        let end = (n + BATCH).min(incidents);
        for i in n + 1..=end {
            let at = now - Duration::seconds(((incidents - i) * 90 * 86_400 / incidents) as i64);
            let level = |k: u64| match k % 3 {
                0 => opsledger::domain::command::Level::High,
                1 => opsledger::domain::command::Level::Medium,
                _ => opsledger::domain::command::Level::Low,
            };
            let mut inc = Incident::raise(
                RecordId::new(Kind::Incident, i),
                NewIncident {
                    title: format!("Seeded incident {i}"),
                    impact: Some(level(i)),
                    urgency: Some(level(i / 3)),
                    service: Some(format!("svc-{}", i % 20)),
                    ci: None,
                    security: i % 97 == 0,
                },
                &reporter,
                at,
                &policy,
            );
            if i % 10 != 0 {
                let _ = inc.acknowledge(&reporter, at + Duration::minutes(7), None);
                let _ = inc.resolve(&reporter, at + Duration::minutes(95), Some("fixed"));
            }
            let record = Record::Incident(inc);
            // New records: their contributions to the report's rollups are all added.
            rollups.add(contribution(&record).as_ref(), 1);
            let json = record.to_json_string();
            let mut entries = per_incident;
            if extra_audit > 0 {
                entries += 1;
                extra_audit -= 1;
            }
            for e in 0..entries {
                let entry = AuditEntry::next(
                    seq,
                    &hash,
                    at + Duration::seconds(e as i64),
                    "console:seed",
                    Some(format!("INC-{i}")),
                    if e == 0 {
                        "incident raise"
                    } else {
                        "incident note"
                    },
                    None,
                    None,
                    "ok".into(),
                );
                seq = entry.seq;
                hash = entry.hash.clone();
                w.audit.push(entry);
            }
            w.records.push((record, json));
        }
        w.counters.push((Kind::Incident, end));
        w.rollups = rollups;
        tx.write(w).await.unwrap();
        tx.commit().await.unwrap();
        n = end;
    }
}

/// The raw-store figures a verify is read against: every audit row stepped through with all its
/// columns read (rusqlite on the database file, one thread, no hashing), and the same entries'
/// SHA-256 alone, in memory on one thread. Both in entries/s.
fn raw_audit_rates(db_url: &str, entries: u64) -> (f64, f64) {
    let path = db_url.trim_start_matches("sqlite://");
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT seq, at, actor, record, action, before_json, after_json, outcome, prev_hash, hash \
             FROM audit ORDER BY seq",
        )
        .unwrap();
    let t = Instant::now();
    let mut rows = stmt.query([]).unwrap();
    let (mut n, mut bytes) = (0u64, 0usize);
    let mut sample = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        for i in 1..10 {
            if let Ok(s) = r.get_ref(i).unwrap().as_str() {
                bytes += s.len();
            }
        }
        if sample.len() < 100_000 {
            sample.push(AuditEntry {
                seq: r.get(0).unwrap(),
                at: r.get(1).unwrap(),
                actor: r.get(2).unwrap(),
                record: r.get(3).unwrap(),
                action: r.get(4).unwrap(),
                before: r.get(5).unwrap(),
                after: r.get(6).unwrap(),
                outcome: r.get(7).unwrap(),
                prev_hash: r.get(8).unwrap(),
                hash: r.get(9).unwrap(),
            });
        }
        n += 1;
    }
    let read = n as f64 / t.elapsed().as_secs_f64();
    assert!(n >= entries && bytes > 0);
    let t = Instant::now();
    let intact = sample.iter().filter(|e| e.as_row().intact()).count();
    let hash = sample.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(intact, sample.len());
    (read, hash)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a small smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let incidents = env_u64("BENCH_INCIDENTS", if full { 1_000_000 } else { 2_000 });
    let audit = env_u64("BENCH_AUDIT", if full { 10_000_000 } else { 20_000 }).max(incidents);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = common::sqlite_db();
        let store = db.store().await;
        let t = Instant::now();
        seed(&*store, incidents, audit).await;
        println!(
            "seeded {incidents} incidents and {audit} audit entries in {:.1} s (SQLite)",
            t.elapsed().as_secs_f64()
        );

        let today = Utc::now().date_naive();
        let month = (Some(today - Duration::days(29)), Some(today));
        let t = Instant::now();
        let report = opsledger::reports::service_report(&*store, month.0, month.1, Utc::now())
            .await
            .unwrap();
        let rolled = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let full =
            opsledger::reports::service_report_full(&*store, month.0, month.1, Utc::now())
                .await
                .unwrap();
        let folded = t.elapsed().as_secs_f64();
        println!(
            "report for a month: {rolled:.3} s from the rollups, {folded:.2} s folded from every record \
             ({:.0} times faster; {} incidents in the month, {} services)",
            folded / rolled,
            report.total.incidents,
            report.services.len()
        );
        assert_eq!(report, full, "the rollups equal the full fold");

        let running = opsledger::app::serve(
            &common::serve_args(None),
            store.clone(),
            Policy::default(),
            opsledger::app::system_time_source(),
        )
        .await
        .unwrap();
        // The dashboard's pages over every stored incident (one in ten open): each loaded 21
        // times over HTTP, the first to warm the cache; the median and slowest of the other 20.
        let client = reqwest::Client::new();
        let base = format!("http://{}", running.addr);
        let rare = incidents.saturating_sub(7).max(1);
        for (what, path, shows) in [
            ("open incidents, most urgent first (target <= 50 ms)", "/".to_string(), "Open incidents"),
            ("open incidents of one service", "/?service=svc-10".into(), "Open incidents"),
            ("open incidents of a service that has none", "/?service=svc-3".into(), "No open incidents"),
            ("open incidents of one priority", "/?priority=P3".into(), "Open incidents"),
            ("open incidents, page 2", String::new(), "Open incidents"),
            ("all incidents, newest first", "/list/incidents".into(), "Seeded incident"),
            ("incidents of one service, resolved", "/list/incidents?service=svc-7&status=resolved".into(), "Seeded incident"),
            ("search for one title word of one record", format!("/search?q={rare}"), "Seeded incident"),
            ("incidents with a title word every record has", "/list/incidents?q=seeded".into(), "Seeded incident"),
        ] {
            let path = if path.is_empty() {
                // The overview's own next-page link.
                let first = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
                let at = first.find("rel=\"next\"").map(|i| &first[..i]).unwrap_or_default();
                let href = at.rsplit_once("href=\"").map(|(_, h)| h).unwrap_or_default();
                href.split('"').next().unwrap_or_default().replace("&amp;", "&")
            } else {
                path
            };
            assert!(!path.is_empty(), "{what}: a next-page link");
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..21 {
                let t = Instant::now();
                let resp = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(resp.status(), 200, "{what}: {path}");
                let page = resp.text().await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(page.contains(shows), "{what}: the page rendered");
                size = page.len();
            }
            times.remove(0);
            times.sort_by(f64::total_cmp);
            println!(
                "dashboard page, {what}: median {:.1} ms, slowest {:.1} ms of 20 loads ({} KiB; {path})",
                times[10],
                times[19],
                size / 1024
            );
        }
        running.stop().await.unwrap();
        let store = db.store().await;

        let (t, cpu) = (Instant::now(), cpu_seconds());
        let verified = opsledger::app::verify_audit(&*store).await.unwrap().unwrap();
        println!(
            "audit verify: {:.1} s ({} entries); {}",
            t.elapsed().as_secs_f64(),
            verified.entries,
            cpu_note(cpu_seconds() - cpu, t.elapsed().as_secs_f64())
        );
        // The server's SLA clock may have recorded breaches of the open incidents meanwhile.
        assert!(verified.entries >= audit);
        let verify_rate = verified.entries as f64 / t.elapsed().as_secs_f64();
        let (read_rate, hash_rate) = raw_audit_rates(db.url(), audit);
        println!(
            "audit verify: {:.0} entries/s; raw store in the same run: one thread reads {:.0} rows/s \
             (verify is {:.2}x that) and hashes {:.0} entries/s; {} readers in parallel",
            verify_rate,
            read_rate,
            verify_rate / read_rate,
            hash_rate,
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
        );

        let out = tempfile::tempdir().unwrap();
        let (before, _) = rss();
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let summary = opsledger::export::export(
            &*store,
            Some(today - Duration::days(89)),
            Some(today),
            &out.path().join("pack"),
            Utc::now(),
            false,
        )
        .await
        .unwrap();
        let (after, peak) = rss();
        let export_cpu = cpu_note(cpu_seconds() - cpu, t.elapsed().as_secs_f64());
        let incidents_exported = summary
            .clause_records
            .iter()
            .find(|(c, _)| *c == "8.6.1")
            .map(|(_, n)| *n)
            .unwrap_or(0);
        println!(
            "export of 90 days: {:.1} s ({incidents_exported} incidents, {} audit entries in the timeline); \
             resident memory {before} MiB before, {after} MiB after, peak {peak} MiB; {export_cpu}",
            t.elapsed().as_secs_f64(),
            summary.timeline_entries
        );
        assert_eq!(summary.verify, "verified");
    });
}
