//! Measurements: resident memory read from `/proc`, and latency percentiles.

use std::time::Duration;

/// Resident memory of a process, in KiB: now (`VmRSS`) and its peak so far (`VmHWM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rss {
    pub current_kib: u64,
    pub peak_kib: u64,
}

/// Reads the resident memory of process `pid`, or `None` where `/proc` is not available or
/// the process has exited.
pub fn rss_of(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Rss> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some(Rss {
        current_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// CPU time process `pid` has used so far, user and system, or `None` where `/proc` is not
/// available or the process has exited.
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_time(&stat)
}

/// Reads `utime` and `stime`, the 14th and 15th fields of `/proc/<pid>/stat`, counted in
/// USER_HZ ticks, which is 100 per second on Linux.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The command name, field 2, is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// Returns the `quantile` (0 to 1) of `sorted` by the nearest-rank method, or `None` when
/// `sorted` is empty.
pub fn percentile(sorted: &[Duration], quantile: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_current_and_peak_rss() {
        let status = "Name:\tokta-dcr-worker\nVmHWM:\t   20480 kB\nVmRSS:\t   18432 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Rss {
                current_kib: 18432,
                peak_kib: 20480
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn own_process_has_resident_memory() {
        let rss = rss_of(std::process::id()).expect("/proc is readable on Linux");
        assert!(rss.current_kib > 0);
        assert!(rss.peak_kib >= rss.current_kib);
    }

    #[test]
    fn stat_line_gives_user_and_system_time() {
        let stat = "4242 (okta dcr) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 30 0 0 20 0 6 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(2800)));
        assert_eq!(parse_cpu_time("4242 (x) S 1"), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 0.95), Some(Duration::from_millis(95)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&samples, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 0.99),
            Some(Duration::from_millis(7))
        );
    }
}
