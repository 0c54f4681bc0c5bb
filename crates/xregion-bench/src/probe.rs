//! Linux /proc readings: process CPU time, machine CPU time, and a background sampler of
//! the server's resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::stats::Usage;

/// Clock ticks per second for /proc CPU fields (`getconf CLK_TCK`, 100 on every common Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime (all threads) of a process, in ticks; `pid` None means this process.
fn process_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime is 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of the whole machine (total minus idle and iowait), from /proc/stat.
fn host_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4)?)
}

/// The whole machine's busy cores over `over` (sleeps that long), e.g. load left by others.
pub fn host_busy_cores(over: Duration, ticks: f64) -> Option<f64> {
    let a = host_busy_ticks()?;
    let t0 = Instant::now();
    while t0.elapsed() < over {
        std::thread::park_timeout(over.saturating_sub(t0.elapsed()));
    }
    let b = host_busy_ticks()?;
    Some(b.saturating_sub(a) as f64 / ticks / t0.elapsed().as_secs_f64())
}

/// Free bytes on the filesystem holding `path` (`df`), if it can be determined.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(path).output().ok()?;
    String::from_utf8(out.stdout).ok()?.lines().nth(1)?.trim().parse().ok()
}

/// A `VmRSS:`/`VmHWM:` style field of /proc/<pid>/status, in bytes.
pub fn status_kib_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples the server's VmRSS every 50 ms on a background thread.
pub struct RssSampler {
    /// Dropping the sender wakes and ends the sampling thread.
    stop: Option<mpsc::Sender<()>>,
    /// Max since the sampler started.
    overall: Arc<AtomicU64>,
    /// Max since the last [`RssSampler::take_phase_max`].
    phase: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let overall = Arc::new(AtomicU64::new(0));
        let phase = Arc::new(AtomicU64::new(0));
        let (o, p) = (overall.clone(), phase.clone());
        let thread = std::thread::spawn(move || {
            loop {
                if let Some(rss) = status_kib_field(pid, "VmRSS:") {
                    o.fetch_max(rss, Ordering::Relaxed);
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                // Sleeps 50 ms, or ends as soon as the sampler is dropped.
                if !matches!(stopped.recv_timeout(Duration::from_millis(50)), Err(mpsc::RecvTimeoutError::Timeout)) {
                    break;
                }
            }
        });
        Self { stop: Some(stop), overall, phase, thread: Some(thread) }
    }

    /// The highest VmRSS seen since the previous call, and resets it.
    pub fn take_phase_max(&self) -> u64 {
        self.phase.swap(0, Ordering::Relaxed)
    }

    /// The highest VmRSS seen so far.
    pub fn overall_max(&self) -> u64 {
        self.overall.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU counters at the start of a phase.
pub struct Snapshot {
    at: Instant,
    server: Option<u64>,
    bench: Option<u64>,
    host: Option<u64>,
}

/// Takes CPU snapshots around phases and turns them into [`Usage`].
pub struct Probe<'a> {
    /// Clock ticks per second.
    pub ticks: f64,
    /// The server process, once it runs.
    pub server_pid: Option<u32>,
    /// The server's RSS sampler, once it runs.
    pub rss: Option<&'a RssSampler>,
}

impl Probe<'_> {
    /// Counters now; also starts a new RSS phase window.
    pub fn begin(&self) -> Snapshot {
        if let Some(r) = self.rss {
            r.take_phase_max();
        }
        Snapshot {
            at: Instant::now(),
            server: self.server_pid.and_then(|p| process_ticks(Some(p))),
            bench: process_ticks(None),
            host: host_busy_ticks(),
        }
    }

    /// Usage since `start`.
    pub fn end(&self, start: &Snapshot) -> Usage {
        let secs = start.at.elapsed().as_secs_f64().max(1e-9);
        let cores = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / self.ticks / secs),
            _ => None,
        };
        Usage {
            server_cores: cores(start.server, self.server_pid.and_then(|p| process_ticks(Some(p)))),
            bench_cores: cores(start.bench, process_ticks(None)).unwrap_or(0.0),
            host_cores: cores(start.host, host_busy_ticks()),
            server_rss_max: self.rss.map(RssSampler::take_phase_max),
        }
    }
}

/// CPU counters of some processes, this one and the machine at one moment (see [`CpuMark::spent`]).
pub struct CpuMark {
    at: Instant,
    pids: Vec<u32>,
    procs: Vec<Option<u64>>,
    bench: Option<u64>,
    host: Option<u64>,
}

/// CPU seconds spent between a [`CpuMark`] and now.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    /// Wall time.
    pub wall: f64,
    /// The marked processes together (the servers).
    pub procs: f64,
    /// This process (the load generator).
    pub bench: f64,
    /// The whole machine (everything but idle and iowait).
    pub host: f64,
}

impl CpuSpent {
    /// Adds another measurement (of a later interval) to this one.
    pub fn add(&mut self, other: &CpuSpent) {
        self.wall += other.wall;
        self.procs += other.procs;
        self.bench += other.bench;
        self.host += other.host;
    }
}

impl CpuMark {
    /// Counters of `pids`, this process and the machine, now.
    pub fn now(pids: &[u32]) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            pids: pids.to_vec(),
            procs: pids.iter().map(|p| process_ticks(Some(*p))).collect(),
            bench: process_ticks(None),
            host: host_busy_ticks(),
        }
    }

    /// CPU seconds spent since the mark (`ticks`: clock ticks per second). A process whose
    /// counters cannot be read counts 0.
    pub fn spent(&self, ticks: f64) -> CpuSpent {
        let secs = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / ticks,
            _ => 0.0,
        };
        CpuSpent {
            wall: self.at.elapsed().as_secs_f64(),
            procs: self.pids.iter().zip(&self.procs).map(|(p, a)| secs(*a, process_ticks(Some(*p)))).sum(),
            bench: secs(self.bench, process_ticks(None)),
            host: secs(self.host, host_busy_ticks()),
        }
    }
}
