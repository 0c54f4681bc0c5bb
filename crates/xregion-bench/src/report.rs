//! The result table, the target ratios, and the Markdown file under `bench/results/`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::stats::{MIB, Phase, fmt_dur, fmt_size};
use crate::{Args, Durations};

/// Where and how the run happened.
pub struct Environment {
    lines: Vec<(String, String)>,
    started: SystemTime,
}

impl Environment {
    /// Gathers machine, build and configuration facts.
    pub fn collect(server_bin: &Path, work: &Path, args: &Args, d: Durations, idle_load: Option<f64>) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let kernel =
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines().find(|l| l.starts_with("MemTotal:")).map(|l| l["MemTotal:".len()..].trim().to_owned())
            })
            .unwrap_or_default();
        let lines = vec![
            ("machine".into(), format!("{cores} cores ({cpu}), {mem} RAM, Linux {kernel}")),
            ("disk".into(), format!("{} ({})", work.display(), filesystem_of(work))),
            ("server".into(), format!("{} (git {})", server_bin.display(), git_revision())),
            ("bench profile".into(), crate::server::own_profile().unwrap_or_default()),
            (
                "load before start".into(),
                idle_load.map_or("unknown".into(), |l| format!("{l:.2} cores busy (other processes)")),
            ),
            (
                "config".into(),
                format!(
                    "concurrency {}, phase seconds 4 KiB {} / 1 MiB {} / 64 MiB {}, at most {} GiB written per phase{}",
                    args.concurrency,
                    secs(d.small),
                    secs(d.medium),
                    secs(d.large),
                    args.max_gib_per_phase,
                    if args.quick { " (--quick)" } else { "" }
                ),
            ),
        ];
        Self { lines, started: SystemTime::now() }
    }

    /// Plain-text header printed before the phases run.
    pub fn header_text(&self) -> String {
        let mut s = format!("xregion-bench {}\n", utc_stamp(self.started));
        for (k, v) in &self.lines {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }
}

/// Seconds without a needless fraction: "15", "0.3".
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s:.1}") }
}

/// `fstype` of the mount holding `path`, from /proc/mounts (longest matching mount point).
fn filesystem_of(path: &Path) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown fs".into();
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1])).then(|| (f[1].len(), format!("{} on {}, {}", f[2], f[1], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, s)| s)
        .unwrap_or_else(|| "unknown fs".into())
}

fn git_revision() -> String {
    let root = crate::server::workspace_root();
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        None => "no commit".into(),
    }
}

/// Server memory over the run.
pub struct Memory {
    /// VmRSS right after start.
    pub idle_rss: Option<u64>,
    /// Highest VmRSS sampled every 50 ms.
    pub rss_max: u64,
    /// VmHWM (kernel's peak RSS) at the end.
    pub hwm: Option<u64>,
}

/// One ratio or limit, with its target.
pub struct Check {
    name: String,
    measured: String,
    target: &'static str,
    /// `None` for informational rows.
    pass: Option<bool>,
}

fn find<'a>(phases: &'a [Phase], name: &str, size: u64, conc: usize) -> Option<&'a Phase> {
    phases.iter().find(|p| p.name == name && p.size == size && p.concurrency == conc)
}

/// Which rate a ratio compares.
#[derive(Clone, Copy)]
enum Rate {
    MibPerSec,
    OpsPerSec,
}

/// `a ÷ b` as a check; `min` is the target (None: informational).
fn ratio(
    name: String,
    a: Option<&Phase>,
    b: Option<&Phase>,
    rate: Rate,
    min: Option<(f64, &'static str)>,
) -> Option<Check> {
    let (a, b) = (a?, b?);
    let (x, y, unit) = match rate {
        Rate::MibPerSec => (a.m.mib_per_sec(), b.m.mib_per_sec(), "MiB/s"),
        Rate::OpsPerSec => (a.m.ops_per_sec(), b.m.ops_per_sec(), "ops/s"),
    };
    let r = if y > 0.0 { x / y } else { 0.0 };
    Some(Check {
        name,
        measured: format!("{r:.2} ({x:.0} ÷ {y:.0} {unit})"),
        target: min.map_or("-", |(_, t)| t),
        pass: min.map(|(m, _)| r >= m),
    })
}

/// The target ratios and limits, plus informational ratios for the other sizes.
pub fn checks(phases: &[Phase], c: usize, rss_max: u64) -> Vec<Check> {
    use crate::phase::{
        GET_CACHED, GET_COLD, PUT, RAW_READ_CACHED, RAW_READ_COLD, RAW_WRITE, RAW_WRITE_AGAIN, RAW_WRITE_DROP,
    };
    use Rate::{MibPerSec, OpsPerSec};
    const K4: u64 = 4 * 1024;
    const M1: u64 = 1024 * 1024;
    const M64: u64 = 64 * 1024 * 1024;
    let f = |name, size, conc| find(phases, name, size, conc);
    let mut out = Vec::new();
    // `--sse`: what encryption at rest costs, measured right after the plain phases.
    for (size, label, rate) in [(K4, "4 KiB", OpsPerSec), (M1, "1 MiB", MibPerSec), (M64, "64 MiB", MibPerSec)] {
        let (put, get) = (crate::phase::PUT_SSE, crate::phase::GET_SSE);
        out.extend(ratio(format!("{label} PUT encrypted ÷ plain"), f(put, size, c), f(PUT, size, c), rate, None));
        out.extend(ratio(
            format!("{label} GET encrypted ÷ plain"),
            f(get, size, c),
            f(GET_CACHED, size, c),
            rate,
            None,
        ));
    }
    out.extend(ratio(
        "64 MiB PUT ÷ raw write+fsync".into(),
        f(PUT, M64, c),
        f(RAW_WRITE, M64, c),
        MibPerSec,
        Some((0.70, "≥ 0.70")),
    ));
    out.extend(ratio(
        "64 MiB GET ÷ raw read, both cold (device)".into(),
        f(GET_COLD, M64, c),
        f(RAW_READ_COLD, M64, c),
        MibPerSec,
        Some((0.70, "≥ 0.70")),
    ));
    // The baseline is the mean of the two c1 measurements: at the start and right before the
    // server's 4 KiB phase (the disk's fsync rate drifts over minutes).
    if let (Some(put), Some(first)) = (f(PUT, K4, c), f(RAW_WRITE, K4, 1)) {
        let x = put.m.ops_per_sec();
        let rates: Vec<f64> =
            [Some(first), f(RAW_WRITE_AGAIN, K4, 1)].into_iter().flatten().map(|p| p.m.ops_per_sec()).collect();
        let y = rates.iter().sum::<f64>() / rates.len() as f64;
        let r = if y > 0.0 { x / y } else { 0.0 };
        let each = rates.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ");
        out.push(Check {
            name: format!("4 KiB PUT ops/s (c{c}) ÷ raw one-fsync-per-file files/s (c1, mean of {each})"),
            measured: format!("{r:.2} ({x:.0} ÷ {y:.0} ops/s)"),
            target: "≥ 3.00",
            pass: Some(r >= 3.0),
        });
    }
    if let Some(p) = f(PUT, K4, c) {
        let v = p.m.percentile(0.99);
        out.push(Check {
            name: "4 KiB PUT p99".into(),
            measured: fmt_dur(v),
            target: "< 50 ms",
            pass: Some(v.is_some_and(|v| v < Duration::from_millis(50))),
        });
    }
    if let Some(p) = f(GET_CACHED, K4, c) {
        let v = p.m.percentile(0.50);
        out.push(Check {
            name: "4 KiB GET p50".into(),
            measured: fmt_dur(v),
            target: "< 1 ms",
            pass: Some(v.is_some_and(|v| v < Duration::from_millis(1))),
        });
    }
    out.push(Check {
        name: "server RSS max (sampled VmRSS, VmHWM)".into(),
        measured: format!("{:.1} MiB", rss_max as f64 / MIB),
        target: "< 200 MiB",
        pass: Some(rss_max > 0 && (rss_max as f64) < 200.0 * MIB),
    });
    let info = [
        ("64 MiB PUT ÷ raw write+fsync+drop (pages dropped like the server's)", PUT, RAW_WRITE_DROP, M64, MibPerSec),
        ("64 MiB GET ÷ raw read, both cached (CPU-bound)", GET_CACHED, RAW_READ_CACHED, M64, MibPerSec),
        ("1 MiB PUT ÷ raw write+fsync", PUT, RAW_WRITE, M1, MibPerSec),
        ("1 MiB GET ÷ raw read, both cached", GET_CACHED, RAW_READ_CACHED, M1, MibPerSec),
        ("4 KiB GET ÷ raw read, both cached", GET_CACHED, RAW_READ_CACHED, K4, OpsPerSec),
    ];
    if c != 1 {
        out.extend(ratio(
            format!("4 KiB PUT ÷ raw one-fsync-per-file, both c{c}"),
            f(PUT, K4, c),
            f(RAW_WRITE, K4, c),
            OpsPerSec,
            None,
        ));
    }
    for (name, a, b, size, rate) in info {
        out.extend(ratio(name.into(), f(a, size, c), f(b, size, c), rate, None));
    }
    if c != 1 {
        for (name, label) in [(PUT, "PUT"), (GET_CACHED, "GET")] {
            if let Some(p) = f(name, K4, 1) {
                out.push(Check {
                    name: format!("4 KiB {label} p50 / p99 at c1 (unloaded)"),
                    measured: format!("{} / {}", fmt_dur(p.m.percentile(0.5)), fmt_dur(p.m.percentile(0.99))),
                    target: "-",
                    pass: None,
                });
            }
        }
    }
    out
}

fn cores(x: Option<f64>) -> String {
    x.map_or("-".into(), |c| format!("{c:.2}"))
}

/// Server CPU cost: µs per operation for small objects, ms per MiB for large ones.
fn server_cost(p: &Phase) -> String {
    let Some(c) = p.usage.server_cores else {
        return "-".into();
    };
    let cpu_secs = c * p.m.secs;
    if p.size < 1024 * 1024 {
        if p.m.ops == 0 { "-".into() } else { format!("{:.0} µs/op", cpu_secs / p.m.ops as f64 * 1e6) }
    } else if p.m.bytes == 0 {
        "-".into()
    } else {
        format!("{:.2} ms/MiB", cpu_secs / (p.m.bytes as f64 / MIB) * 1e3)
    }
}

/// One line per finished phase, for progress on stderr.
pub fn progress_line(p: &Phase) -> String {
    format!(
        "{:<22} {:>7} c{:<3} {:>9.0} ops/s {:>9.1} MiB/s  p50 {:>9}  p99 {:>9}  server cpu {}  bench cpu {:.2}",
        p.name,
        fmt_size(p.size),
        p.concurrency,
        p.m.ops_per_sec(),
        p.m.mib_per_sec(),
        fmt_dur(p.m.percentile(0.5)),
        fmt_dur(p.m.percentile(0.99)),
        cores(p.usage.server_cores),
        p.usage.bench_cores
    )
}

/// The whole report as Markdown (also readable as plain text).
pub fn render(env: &Environment, phases: &[Phase], checks: &[Check], mem: &Memory, took: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# xregion benchmark, {}\n", utc_stamp(env.started));
    for (k, v) in &env.lines {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s, "- run time: {:.0} s\n", took.as_secs_f64());
    let _ = writeln!(s, "## Phases\n");
    let _ = writeln!(
        s,
        "| phase | size | conc | ops | secs | ops/s | MiB/s | p50 | p99 | max | server cores | server cost | bench cores | host cores | server RSS max |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for p in phases {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            p.name,
            fmt_size(p.size),
            p.concurrency,
            p.m.ops,
            p.m.secs,
            p.m.ops_per_sec(),
            p.m.mib_per_sec(),
            fmt_dur(p.m.percentile(0.5)),
            fmt_dur(p.m.percentile(0.99)),
            fmt_dur(p.m.latencies.last().copied()),
            cores(p.usage.server_cores),
            server_cost(p),
            p.usage.bench_cores,
            cores(p.usage.host_cores),
            p.usage.server_rss_max.map_or("-".into(), |r| format!("{:.1} MiB", r as f64 / MIB)),
        );
    }
    let _ = writeln!(s, "\n## Targets\n");
    let _ = writeln!(s, "| check | measured | target | result |");
    let _ = writeln!(s, "|---|---|---|---|");
    for c in checks {
        let result = match c.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "info",
        };
        let _ = writeln!(s, "| {} | {} | {} | {} |", c.name, c.measured, c.target, result);
    }
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / MIB));
    let _ = writeln!(
        s,
        "\nServer memory: {} idle after start, {} highest VmRSS sampled every 50 ms, VmHWM {} at the end.",
        mib(mem.idle_rss),
        mib(Some(mem.rss_max)),
        mib(mem.hwm)
    );
    let _ = writeln!(
        s,
        "\nNotes: \"cached\" reads and GETs are served from the page cache (the data was just written), so \
         they measure CPU and memory bandwidth, except the server's GETs of objects above 64 KiB: the server \
         writes and reads blob files with O_DIRECT, so those read from the device; \"cold\" rows read each file or object once after evicting it \
         from the page cache (posix_fadvise DONTNEED via dd), so they include the device. \"cores\" = CPU \
         seconds ÷ wall seconds (bench = this process: the raw workers or the load client; host = the whole \
         machine, so host − server − bench is other load). \"server cost\" = server CPU per operation or per \
         MiB. Latency is per request, measured in the client, including queueing behind the other workers."
    );
    s
}

/// Writes `text` to `<dir>/<YYYY-MM-DD>.md` (or `-2`, `-3`, … when that exists).
pub fn write(dir: &Path, text: &str, started: SystemTime) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let date = utc_date(started);
    for n in 1..1000 {
        let name = if n == 1 { format!("{date}.md") } else { format!("{date}-{n}.md") };
        let path = dir.join(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    anyhow::bail!("too many result files for {date} in {}", dir.display())
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let rem = secs.rem_euclid(86_400);
    format!("{} {:02}:{:02} UTC", utc_date(t), rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_secs(1_767_225_599)), "2025-12-31");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_767_225_599)), "2025-12-31 23:59 UTC");
    }
}
