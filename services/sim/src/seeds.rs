//! Which seeds a test runs (`CENTINELA_SIM_SEEDS`), and running them with a replay command on
//! failure.

use crate::{Config, Report};

/// The environment variable that selects seeds: a range `a..b` (end exclusive), `a..=b`, a
/// comma list `1,5,9`, or one seed.
pub const SEEDS_ENV: &str = "CENTINELA_SIM_SEEDS";

/// Parses a seed selection (see [`SEEDS_ENV`]).
pub fn parse(text: &str) -> Result<Vec<u64>, String> {
    let text = text.trim();
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("{SEEDS_ENV}: '{s}' is not a seed: {e}"))
    };
    if let Some((a, b)) = text.split_once("..=") {
        return Ok((number(a)?..=number(b)?).collect());
    }
    if let Some((a, b)) = text.split_once("..") {
        return Ok((number(a)?..number(b)?).collect());
    }
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(number)
        .collect()
}

/// The seeds to run: [`SEEDS_ENV`] if set, else `default`.
pub fn selected(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var(SEEDS_ENV) {
        Ok(text) => parse(&text).unwrap_or_else(|e| panic!("{e}")),
        Err(_) => default.collect(),
    }
}

/// The single command that replays `seed` of test `test`.
pub fn replay_command(seed: u64, test: &str) -> String {
    format!("{SEEDS_ENV}={seed} cargo nextest run -p centinela-sim --test sim {test}")
}

/// With `CENTINELA_SIM_DUMP=DIR`, writes the run's history as text to
/// `DIR/{test}-{seed}-{hash}.txt` (two runs of a seed that diverge leave two files to diff).
pub fn dump(test: &str, report: &Report) {
    if let Some(dir) = std::env::var_os("CENTINELA_SIM_DUMP") {
        let path = std::path::Path::new(&dir)
            .join(format!("{test}-{}-{:016x}.txt", report.seed, report.hash));
        std::fs::write(&path, report.history.dump())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// Runs `config(seed)` for every seed, printing each run's summary; panics naming every seed
/// whose invariants failed, with its violations and the command that replays it.
pub fn run_all(test: &str, seeds: &[u64], config: impl Fn(u64) -> Config) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for &seed in seeds {
        let report = crate::run(&config(seed));
        eprintln!("{test}: {}", report.summary());
        dump(test, &report);
        if !report.verdict.violations.is_empty() {
            failures.push(format!(
                "seed {seed} broke {} invariant(s):\n  {}\nfaults:\n  {}\nreplay: {}",
                report.verdict.violations.len(),
                report.verdict.violations.join("\n  "),
                report
                    .history
                    .faults
                    .iter()
                    .map(|(t, f)| format!("{t} ms {f}"))
                    .collect::<Vec<_>>()
                    .join("\n  "),
                replay_command(seed, test)
            ));
        }
        reports.push(report);
    }
    assert!(
        failures.is_empty(),
        "{test}: {} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
    reports
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_ranges_and_lists() {
        assert_eq!(parse("1..4").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("1..=3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("1,5, 9").unwrap(), vec![1, 5, 9]);
        assert_eq!(parse("42").unwrap(), vec![42]);
        assert!(parse("x").is_err());
    }
}
