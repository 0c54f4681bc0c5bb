//! `xregion keys rotate`: adds the next SSE master key to a region (`docs/design/encryption-at-rest.md`,
//! *Key rotation*). The region reads its keys at start, so this is safe while it runs; it
//! wraps new data keys with the new key from its next start.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::PartialConfig;

/// `xregion keys` arguments.
#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(clap::Subcommand)]
enum KeysAction {
    /// Make a new master key: from the region's next start it encrypts new objects, and the
    /// older objects' data keys are re-wrapped under it, after which the older keys are retired.
    Rotate(RotateArgs),
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The region's TOML configuration file (its data_dir and sse_master_key_file).
    #[arg(long, env = "XREGION_CONFIG")]
    config: Option<PathBuf>,
    /// The region's data directory (overrides the file).
    #[arg(long = "data", env = "XREGION_DATA")]
    data_dir: Option<PathBuf>,
    /// The region's first master key file, if it is not the default one in the data directory.
    #[arg(long, env = "XREGION_SSE_MASTER_KEY_FILE")]
    sse_master_key_file: Option<PathBuf>,
}

/// Runs `xregion keys …`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.action {
        KeysAction::Rotate(args) => rotate(args),
    }
}

fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => PartialConfig::from_file(path)?,
        None => PartialConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("missing the data directory: --data, XREGION_DATA or data_dir in --config")?;
    let key_file = args.sse_master_key_file.or(file.sse_master_key_file);
    let (id, path) = xregion_core::encryption::rotate_master_key(&data_dir, key_file.as_deref())
        .with_context(|| format!("rotating the SSE master key of {}", data_dir.display()))?;
    println!("xregion: SSE master key {id} created at {}", path.display());
    println!("From the region's next start, new objects are encrypted under it, and the data keys of older");
    println!("objects are re-wrapped under it in the background. Keep the older key files until the region");
    println!("logs that they are retired (keys/sse-master*.retired appear); keep a copy of this one.");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write a scratch configuration and key file")]
mod tests {
    use super::*;

    /// The data directory and the first key file come from the region's configuration file
    /// when no flag names them; without a data directory the command says what is missing.
    #[test]
    fn rotate_reads_the_region_configuration() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let first = dir.path().join("site.key");
        std::fs::write(&first, "ab".repeat(32)).expect("key file");
        let config = dir.path().join("region.toml");
        let text = format!("data_dir = {:?}\nsse_master_key_file = {:?}\n", data, first);
        std::fs::write(&config, text).expect("config");
        let args = |config: Option<PathBuf>| RotateArgs { config, data_dir: None, sse_master_key_file: None };
        rotate(args(Some(config.clone()))).expect("rotate from the configuration");
        assert!(dir.path().join("site-2.key").try_exists().expect("stat"), "beside the configured first key");
        rotate(args(Some(config))).expect("rotate again");
        assert!(dir.path().join("site-3.key").try_exists().expect("stat"));
        let err = rotate(args(None)).expect_err("no data directory");
        assert!(err.to_string().contains("missing the data directory"), "{err}");
    }
}
