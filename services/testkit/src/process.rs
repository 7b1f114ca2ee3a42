//! What this process costs, from Linux's `/proc/self`: the CPU time and resident memory the
//! benchmarks and bounds tests report (a node under test runs in the test's own process).

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The name, field 2, is in parentheses and may hold spaces: count from its end.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name and state.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0 // USER_HZ on Linux
}

/// Resident memory of this process (`VmRSS` of `/proc/self/status`), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// [`rss_bytes`] in MiB.
pub fn rss_mib() -> f64 {
    rss_bytes() as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // A live process has some resident memory, and burning CPU shows in its time.
        assert!(rss_bytes() > 0);
        let before = cpu_seconds();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while cpu_seconds() <= before {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            assert!(start.elapsed().as_secs() < 60, "CPU time never moved");
        }
        std::hint::black_box(x);
    }
}
