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
    /// Make a new master key that encrypts the region's new objects from its next start;
    /// objects written before keep opening with the keys they were written with.
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
    println!("The region encrypts new objects with it from its next start. Objects written before keep");
    println!("opening with the keys they were written with: keep every key file, and a copy of this one.");
    Ok(())
}
