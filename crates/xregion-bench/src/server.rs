//! Finding, building, starting and stopping the `xregion` binary under test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

/// The cargo profile directory this benchmark binary runs from (`release`, `debug`, …).
pub fn own_profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| manifest.to_path_buf())
}

/// Where the servers under test come from and where their data goes (flags of both modes).
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Parent directory for the raw files and the servers' data (a temporary directory is
    /// created inside and removed at the end). Put it on the disk you want to measure.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `xregion` binary to run (default: next to this executable).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Do not run `cargo build -p xregion-server` before starting (default: build when run by cargo).
    #[arg(long)]
    pub no_build: bool,
}

impl ServerArgs {
    /// The binary to run (see [`locate`]).
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        locate(self.server_bin.as_deref(), !self.no_build)
    }

    /// The parent of the run's temporary directory, created if needed.
    pub fn parent_dir(&self) -> anyhow::Result<PathBuf> {
        let parent = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        Ok(parent)
    }
}

/// The `xregion` binary to benchmark: `explicit` if given; otherwise the one next to this
/// executable, first brought up to date with `cargo build` in the same profile when this
/// runs under cargo (the `CARGO` variable is set) and `build` is true.
pub fn locate(explicit: Option<&Path>, build: bool) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        anyhow::ensure!(p.is_file(), "--server-bin {} does not exist", p.display());
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    let dir = exe.parent().ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    let bin = dir.join(format!("xregion{}", std::env::consts::EXE_SUFFIX));
    if build && let Ok(cargo) = std::env::var("CARGO") {
        let profile = own_profile().unwrap_or_else(|| "release".to_owned());
        let profile = if profile == "debug" { "dev".to_owned() } else { profile };
        eprintln!("xregion-bench: cargo build --profile {profile} -p xregion-server (no-op when up to date)");
        let status = Command::new(cargo)
            .args(["build", "--profile", &profile, "-p", "xregion-server"])
            .current_dir(workspace_root())
            .status()
            .context("running cargo build for xregion-server")?;
        anyhow::ensure!(status.success(), "cargo build -p xregion-server failed ({status})");
    }
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it with `cargo build --release -p xregion-server`, or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

/// A running `xregion serve`. Dropping it kills the process.
pub struct Server {
    /// `None` once stopped.
    child: Option<Child>,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Where the server's stderr goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts `bin serve` on a free loopback port with `data` as its data directory and waits
    /// for the "listening on" line.
    pub fn start(
        bin: &Path,
        data: &Path,
        log: &Path,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<Self> {
        Self::start_with(bin, data, log, region, access_key, secret_key, "127.0.0.1:0", &[])
    }

    /// [`Server::start`] on a given listen address, with more `serve` arguments (`--peer
    /// REGION=URL`, `--config FILE`). The log is appended to (a restart keeps the first run's).
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
        bin: &Path,
        data: &Path,
        log: &Path,
        region: &str,
        access_key: &str,
        secret_key: &str,
        listen: &str,
        args: &[String],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--region", region, "--listen", listen, "--data"]).arg(data).args([
            "--access-key",
            access_key,
            "--secret-key",
            secret_key,
        ]);
        cmd.args(args);
        let mut child = cmd
            .env("XREGION_LOG", std::env::var("XREGION_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("server stdout was not captured"))?;
        let (tx, rx) = mpsc::channel::<String>();
        // Reads stdout to its end so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
            }
        });
        let pid = child.id();
        let mut server = Server { child: Some(child), pid, endpoint: String::new(), log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(endpoint) => {
                    server.endpoint = endpoint;
                    return Ok(server);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = server.exited()? {
                        bail!("server exited before listening ({status}); log:\n{}", server.log_tail());
                    }
                    if Instant::now() > deadline {
                        bail!("server did not print its listening line within 60 s; log:\n{}", server.log_tail());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Dropping `server` kills the process if it is still there.
                    bail!("server closed stdout before listening; log:\n{}", server.log_tail());
                }
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the server has exited.
    fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().context("polling the server"),
            None => Ok(None),
        }
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then wait up to 15 s for a clean exit, then SIGKILL.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // A thread owns the wait so this side can wait with a timeout.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(status) => status,
            Err(_) => {
                eprintln!("xregion-bench: server did not exit within 15 s of SIGTERM; killing it");
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                rx.recv().context("waiting for the killed server")?
            }
        };
        status.context("waiting for the server to exit")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
