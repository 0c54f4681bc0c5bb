//! What one timed phase produced: operation count, bytes, wall time, latency distribution,
//! and the CPU/RSS usage observed while it ran.

use std::time::Duration;

/// Raw counts from a phase's workers.
#[derive(Debug, Default)]
pub struct Measured {
    /// Completed operations.
    pub ops: u64,
    /// Payload bytes moved by those operations.
    pub bytes: u64,
    /// Wall time from the start until the last in-flight operation finished.
    pub secs: f64,
    /// Every operation's latency, sorted ascending.
    pub latencies: Vec<Duration>,
    /// Operations completed per worker (PUT phases name their keys by worker and index).
    pub per_worker: Vec<u64>,
}

impl Measured {
    /// Merges worker results (latencies unsorted) into one sorted measurement.
    pub fn from_workers(secs: f64, workers: Vec<(Vec<Duration>, u64, u64)>) -> Self {
        let mut m = Measured { secs, ..Default::default() };
        for (lat, bytes, ops) in workers {
            m.ops += ops;
            m.bytes += bytes;
            m.per_worker.push(ops);
            m.latencies.extend(lat);
        }
        m.latencies.sort_unstable();
        m
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.secs > 0.0 { self.ops as f64 / self.secs } else { 0.0 }
    }

    /// MiB per second of payload.
    pub fn mib_per_sec(&self) -> f64 {
        if self.secs > 0.0 { self.bytes as f64 / MIB / self.secs } else { 0.0 }
    }

    /// Nearest-rank percentile (`q` in 0..=1) of the latencies.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, n) - 1])
    }
}

/// CPU and memory observed while a phase ran.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    /// Server CPU time ÷ wall time (1.0 = one core busy); `None` when no server ran.
    pub server_cores: Option<f64>,
    /// The benchmark process's own CPU (load generator, or the raw disk workers).
    pub bench_cores: f64,
    /// The whole machine's busy CPU (everything except idle and iowait).
    pub host_cores: Option<f64>,
    /// Highest server VmRSS sampled during the phase, bytes.
    pub server_rss_max: Option<u64>,
}

/// One row of the result table.
#[derive(Debug)]
pub struct Phase {
    /// Label, one of [`crate::phase`].
    pub name: &'static str,
    /// Object or file size, bytes.
    pub size: u64,
    /// Workers running at once.
    pub concurrency: usize,
    /// Counts and latencies.
    pub m: Measured,
    /// CPU and RSS while it ran.
    pub usage: Usage,
}

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Formats a latency compactly: µs below 1 ms, ms with one decimal above.
pub fn fmt_dur(d: Option<Duration>) -> String {
    match d {
        None => "-".to_owned(),
        Some(d) if d < Duration::from_millis(1) => format!("{} µs", d.as_micros()),
        Some(d) if d < Duration::from_millis(100) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1e3),
    }
}

/// Formats a byte count as KiB/MiB.
pub fn fmt_size(bytes: u64) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes >> 10) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let lat = (1..=100).map(Duration::from_millis).collect::<Vec<_>>();
        let m = Measured::from_workers(1.0, vec![(lat, 0, 100)]);
        assert_eq!(m.percentile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(m.percentile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(m.percentile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(m.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Measured::default().percentile(0.5), None);
    }
}
