//! How long `centinela report` takes on a year of history (docs/benchmarks.md, "Reports").
//!
//! ```sh
//! cargo run --release -p centinela-archive --example report_bench -- sqlite   # a file in /tmp
//! cargo run --release -p centinela-archive --example report_bench -- postgres # initdb, a free port
//! REPORT_BENCH_EXPLAIN=/tmp/plans.log cargo run --release -p centinela-archive \
//!     --example report_bench -- postgres   # and every report statement's plan, analyzed
//! ```
//!
//! With `REPORT_BENCH_EXPLAIN=FILE`, PostgreSQL logs the plan of every report statement with
//! its actual times and buffers (`auto_explain`), and the server's log is copied to FILE at
//! the end; the timings of such a run include the instrumentation's cost.
//!
//! Writes a synthetic year (1,000 incidents a day over 1,000 buttons in 40 districts and 200
//! units: 365,000 incidents, each with its unit row) straight into the report tables, as the
//! archiver's facts would be (times and their buckets), then times each grouping over the
//! whole year, three runs each (the first warms the database's cache), printing the wall time
//! and this process's CPU time of each (with SQLite the database runs in this process;
//! PostgreSQL's own CPU is not in it, and is printed apart: its backends' CPU time, read from
//! /proc). Seeded: the same history every run.

use std::time::{Duration, Instant};

use centinela_archive::Archive;
use centinela_archive::report::{Grouping, Query, bucket_floor_s, week_quarter};
use centinela_core::time::Timestamp;
use centinela_testkit::process::cpu_seconds;

const DAYS: u64 = 365;
const PER_DAY: u64 = 1_000;
const BUTTONS: u64 = 1_000;
const UNITS: u64 = 200;
/// Districts, each of `BUTTONS / DISTRICTS` consecutive buttons.
const DISTRICTS: u64 = 40;
/// Rows per INSERT statement.
const BATCH: u64 = 500;
/// 2026-01-01T05:00:00Z, midnight in Lima.
const START_MS: u64 = 1_767_243_600_000;

/// A small seeded generator (SplitMix64): the same year every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn fill(archive: &Archive) {
    let mut rng = Rng(19);
    let total = DAYS * PER_DAY;
    let mut incident_rows = Vec::with_capacity(BATCH as usize);
    let mut unit_rows = Vec::with_capacity(BATCH as usize);
    for n in 0..total {
        let first = START_MS + n * (DAYS * 86_400_000 / total) + rng.below(60_000);
        let button_n = rng.below(BUTTONS);
        let button = format!("B{button_n:04}");
        let district = format!("D{:02}", button_n * DISTRICTS / BUTTONS);
        let unit = format!("U{:03}", rng.below(UNITS));
        let resolution = match rng.below(100) {
            0..=69 => "handled",
            70..=84 => "prank",
            85..=96 => "false_alarm",
            _ => "cancelled",
        };
        let presses = 1 + rng.below(3);
        let ack = first + 5_000 + rng.below(60_000);
        let assigned = first + 2_000 + rng.below(30_000);
        let on_scene = assigned + 120_000 + rng.below(600_000);
        let bucket = |at: u64| bucket_floor_s(((at - first) / 1000) as i64);
        let (ack_b, assigned_b, on_scene_b) = (bucket(ack), bucket(assigned), bucket(on_scene));
        let quarter = week_quarter(first as i64);
        let values = |unit: &str| {
            format!(
                "('i{n}', '{unit}', '{button}', '{resolution}', {presses}, {first}, {ack}, \
                 {assigned}, {on_scene}, {ack_b}, {assigned_b}, {on_scene_b}, {quarter}, \
                 '{district}')"
            )
        };
        incident_rows.push(values(&unit));
        unit_rows.push(values(&unit));
        if incident_rows.len() as u64 == BATCH || n + 1 == total {
            for (table, rows) in [
                ("report_incidents", &mut incident_rows),
                ("report_units", &mut unit_rows),
            ] {
                archive
                    .execute_raw(&format!(
                        "INSERT INTO {table} (incident_id, unit, button, resolution, press_count, \
                         first_press_at_ms, acknowledged_at_ms, assigned_at_ms, on_scene_at_ms, \
                         acknowledged_bucket_s, assigned_bucket_s, on_scene_bucket_s, \
                         week_quarter, district) VALUES {}",
                        rows.join(", ")
                    ))
                    .await
                    .expect("insert");
                rows.clear();
            }
        }
    }
}

/// CPU seconds of a process (`/proc/PID/stat`: utime + stime), 0 when it is gone.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of the PostgreSQL server whose data directory is `dir`: its postmaster's
/// children (the backends serving this bench, which live as long as the pool's connections).
fn postgres_cpu(dir: &std::path::Path) -> f64 {
    let dir = dir.display().to_string();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    let cmdline = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let Some(postmaster) = pids
        .iter()
        .copied()
        .find(|&pid| String::from_utf8_lossy(&cmdline(pid)).contains(&dir))
    else {
        return 0.0;
    };
    pids.iter()
        .copied()
        .filter(|&pid| parent_of(pid) == Some(postmaster))
        .map(cpu_of)
        .sum()
}

async fn run(archive: Archive, backend: &str, server_cpu: impl Fn() -> f64) {
    let started = Instant::now();
    fill(&archive).await;
    println!(
        "{backend}: {} incidents written in {:.1} s",
        DAYS * PER_DAY,
        started.elapsed().as_secs_f64()
    );
    if backend == "postgres" {
        // What autovacuum does on a live archive soon after a load like this one (PostgreSQL
        // 13+ vacuums after inserts too): statistics for the planner, and the visibility map
        // that lets it answer from the grouping indexes alone.
        for table in ["report_incidents", "report_units"] {
            archive
                .execute_raw(&format!("VACUUM ANALYZE {table}"))
                .await
                .expect("vacuum");
        }
    }
    let since = Timestamp::from_millis(START_MS);
    let until = since.saturating_add(Duration::from_secs(DAYS * 86_400));
    for by in Grouping::ALL {
        let mut times = Vec::new();
        let mut cpu_ms = Vec::new();
        let mut server_cpu_ms = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let cpu_before = cpu_seconds();
            let server_before = server_cpu();
            let report = archive
                .report(&Query {
                    since,
                    until,
                    by,
                    utc_offset_minutes: -300,
                })
                .await
                .expect("report");
            times.push(started.elapsed().as_millis());
            cpu_ms.push(((cpu_seconds() - cpu_before) * 1000.0).round() as u64);
            server_cpu_ms.push(((server_cpu() - server_before) * 1000.0).round() as u64);
            rows = report.rows.len();
            assert_eq!(
                report.total.incidents,
                DAYS * PER_DAY,
                "every incident counted"
            );
        }
        println!(
            "{backend} --by {by}: {rows} rows, {times:?} ms (3 runs), this process's CPU \
             {cpu_ms:?} ms, the server's CPU {server_cpu_ms:?} ms"
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("postgres") => {
            let server = tokio::task::spawn_blocking(centinela_testkit::postgres::Postgres::start)
                .await
                .unwrap();
            let explain = std::env::var_os("REPORT_BENCH_EXPLAIN");
            if explain.is_some() {
                // For the connections opened from now on (the run's own pool, below).
                let setup = Archive::open(&server.url()).unwrap();
                for setting in [
                    "session_preload_libraries = 'auto_explain'",
                    "auto_explain.log_min_duration = 20",
                    "auto_explain.log_analyze = on",
                    "auto_explain.log_buffers = on",
                ] {
                    setup
                        .execute_raw(&format!("ALTER ROLE CURRENT_USER SET {setting}"))
                        .await
                        .expect("auto_explain");
                }
                setup.close().await;
            }
            let archive = Archive::open(&server.url()).unwrap();
            let dir = server.dir().to_path_buf();
            run(archive.clone(), "postgres", move || postgres_cpu(&dir)).await;
            archive.close().await;
            if let Some(out) = explain {
                std::fs::copy(server.dir().join("postgres.log"), &out).expect("copy the log");
                println!("plans in {}", std::path::Path::new(&out).display());
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:{}", dir.path().join("archive.db").display());
            let archive = Archive::open(&url).unwrap();
            run(archive.clone(), "sqlite", || 0.0).await;
            archive.close().await;
        }
    }
}
