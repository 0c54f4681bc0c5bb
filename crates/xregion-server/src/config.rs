//! Region configuration: a TOML file, overridden by `XREGION_*` environment variables and
//! command-line flags (clap does the precedence: flag > env > file > default).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use xregion_replication::ExternalTargetConfig;

/// What one region needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionConfig {
    /// Region name, e.g. `us-east-1`.
    pub region: String,
    /// Address to listen on, e.g. `127.0.0.1:9000`.
    pub listen: SocketAddr,
    /// Data directory (metadata + blobs).
    pub data_dir: PathBuf,
    /// Root access key of the deployment.
    pub access_key: String,
    /// Root secret key of the deployment.
    pub secret_key: String,
    /// Base domains for virtual-hosted-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
    /// Other regions of the deployment: region name → endpoint URL (`http://host:port` or `https://host:port`).
    pub peers: BTreeMap<String, String>,
    /// Bearer token that also admits `GET /_xregion/metrics` and `/_xregion/replication`
    /// (`Authorization: Bearer <token>`), for scrapers that cannot sign SigV4. Unset: SigV4 only.
    pub metrics_token: Option<String>,
    /// Free space to keep on the data directory's filesystem: object writes are refused
    /// (`507 InsufficientStorage`) below it, so deletes and replication bookkeeping always
    /// have room. Unset: 5 % of the filesystem, at least 64 MiB and at most 1 GiB.
    pub min_free_bytes: Option<u64>,
    /// The region's version stamp tag (0 to 15), instead of its position among the region
    /// names it knows (`xregion_types::stamp_tag`). For deployments whose regions do not all
    /// list the same peers: each region that writes into a bucket another one also writes into
    /// (two-way replication, two sources to one destination) needs its own tag.
    pub stamp_tag: Option<u8>,
    /// Length of a lifecycle day in milliseconds, for tests only (`None`: a real day).
    pub lifecycle_day_ms: Option<i64>,
    /// The master key file of encryption at rest (SSE-S3), which must exist (64 hex digits).
    /// Unset: `<data_dir>/keys/sse-master.key`, created on first start. Keep a copy away from
    /// the data: without it the region's encrypted objects cannot be read.
    pub sse_master_key_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate (`tls_cert_file`, `tls_key_file`). Unset: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// More CAs (PEM) to trust, besides the system's, when this region calls peers and S3
    /// services over `https://`: a private CA, or a peer's self-signed certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// Buckets of other S3 services that this region's replication rules may name as
    /// destinations (`[[targets]]`; `docs/replication.md`, *Backing up to another S3 service*).
    pub targets: Vec<ExternalTargetConfig>,
}

/// The certificate a region serves HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, leaf first (as ACME clients write `fullchain.pem`).
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// One `[[targets]]` entry as written: a bucket of another S3 service. The secret comes from
/// the file or from the environment variable `secret_key_env` names (so the file need not
/// hold it).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// The bucket's name there; replication rules name it `arn:aws:s3:::<bucket>`.
    pub bucket: String,
    /// The service's endpoint URL, `https://…` or `http://…`.
    pub endpoint: String,
    /// The region to sign for (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key of a principal there that may write the bucket.
    pub access_key: String,
    /// Its secret key.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// The environment variable holding the secret key instead.
    #[serde(default)]
    pub secret_key_env: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`; most self-hosted services want them)
    /// instead of virtual-hosted ones (`bucket.endpoint/key`, AWS's default).
    #[serde(default)]
    pub path_style: bool,
    /// The bucket has no versioning (a service without it, such as Garage, or a bucket left
    /// unversioned): it keeps the newest version of each key, and replication rules may name
    /// it although VAL-3 asks for versioning. Off by default: a backup without history must
    /// be chosen, not stumbled into.
    #[serde(default)]
    pub unversioned: bool,
}

impl std::fmt::Debug for TargetEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetEntry")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("secret_key_env", &self.secret_key_env)
            .field("path_style", &self.path_style)
            .field("unversioned", &self.unversioned)
            .finish()
    }
}

impl TargetEntry {
    /// Checks the entry and reads its secret (from `env` when `secret_key_env` is set).
    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<ExternalTargetConfig> {
        let bucket = &self.bucket;
        xregion_types::BucketName::parse(bucket).map_err(|e| anyhow::anyhow!("target bucket {bucket:?}: {e}"))?;
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            anyhow::bail!("target {bucket}: endpoint must start with http:// or https://, got {:?}", self.endpoint);
        }
        let secret_key = match (self.secret_key, &self.secret_key_env) {
            (Some(secret), None) => secret,
            (None, Some(var)) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                anyhow::anyhow!("target {bucket}: environment variable {var} (secret_key_env) is not set")
            })?,
            (Some(_), Some(_)) => anyhow::bail!("target {bucket}: set secret_key or secret_key_env, not both"),
            (None, None) => anyhow::bail!("target {bucket}: secret_key or secret_key_env is required"),
        };
        if self.access_key.is_empty() {
            anyhow::bail!("target {bucket}: access_key is empty");
        }
        Ok(ExternalTargetConfig {
            region: self.region.filter(|r| !r.is_empty()).unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: self.endpoint.trim_end_matches('/').to_owned(),
            bucket: self.bucket,
            access_key: self.access_key,
            secret_key,
            path_style: self.path_style,
            unversioned: self.unversioned,
        })
    }
}

/// Base domains used when none are configured.
pub fn default_domains() -> Vec<String> {
    vec!["localhost".to_owned()]
}

/// The same fields, all optional: what a file or the command line may set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    /// See [`RegionConfig::region`].
    pub region: Option<String>,
    /// See [`RegionConfig::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`RegionConfig::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`RegionConfig::access_key`].
    pub access_key: Option<String>,
    /// See [`RegionConfig::secret_key`].
    pub secret_key: Option<String>,
    /// See [`RegionConfig::domains`].
    pub domains: Option<Vec<String>>,
    /// See [`RegionConfig::peers`].
    pub peers: Option<BTreeMap<String, String>>,
    /// See [`RegionConfig::metrics_token`].
    pub metrics_token: Option<String>,
    /// See [`RegionConfig::min_free_bytes`].
    pub min_free_bytes: Option<u64>,
    /// See [`RegionConfig::stamp_tag`].
    pub stamp_tag: Option<u8>,
    /// See [`RegionConfig::sse_master_key_file`].
    pub sse_master_key_file: Option<PathBuf>,
    /// See [`RegionConfig::tls`].
    pub tls_cert_file: Option<PathBuf>,
    /// See [`RegionConfig::tls`].
    pub tls_key_file: Option<PathBuf>,
    /// See [`RegionConfig::tls_ca_file`].
    pub tls_ca_file: Option<PathBuf>,
    /// See [`RegionConfig::targets`] (from the file only).
    pub targets: Option<Vec<TargetEntry>>,
    /// See [`RegionConfig::lifecycle_day_ms`] (not from the file).
    #[serde(skip)]
    pub lifecycle_day_ms: Option<i64>,
}

impl PartialConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Values of `over` win over ours.
    pub fn overlay(self, over: PartialConfig) -> Self {
        Self {
            region: over.region.or(self.region),
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            access_key: over.access_key.or(self.access_key),
            secret_key: over.secret_key.or(self.secret_key),
            domains: over.domains.or(self.domains),
            peers: match (self.peers, over.peers) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                (a, b) => b.or(a),
            },
            metrics_token: over.metrics_token.or(self.metrics_token),
            min_free_bytes: over.min_free_bytes.or(self.min_free_bytes),
            stamp_tag: over.stamp_tag.or(self.stamp_tag),
            sse_master_key_file: over.sse_master_key_file.or(self.sse_master_key_file),
            tls_cert_file: over.tls_cert_file.or(self.tls_cert_file),
            tls_key_file: over.tls_key_file.or(self.tls_key_file),
            tls_ca_file: over.tls_ca_file.or(self.tls_ca_file),
            targets: over.targets.or(self.targets),
            lifecycle_day_ms: over.lifecycle_day_ms.or(self.lifecycle_day_ms),
        }
    }

    /// Checks that every required field is set; target secrets named by variable come from
    /// the process environment.
    pub fn finish(self) -> anyhow::Result<RegionConfig> {
        self.finish_with_env(&|var| std::env::var(var).ok())
    }

    /// [`PartialConfig::finish`] reading variables with `env`.
    pub fn finish_with_env(self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<RegionConfig> {
        let missing =
            |f: &str| anyhow::anyhow!("missing configuration: {f} (set it in the file, flag or XREGION_ env)");
        let region = self.region.ok_or_else(|| missing("region"))?;
        if let Some(tag) = self.stamp_tag
            && u64::from(tag) >= xregion_types::STAMP_TAGS
        {
            anyhow::bail!("stamp_tag must be from 0 to {}, not {tag}", xregion_types::STAMP_TAGS - 1);
        }
        let mut peers = self.peers.unwrap_or_default();
        peers.remove(&region);
        let mut targets = Vec::new();
        for entry in self.targets.unwrap_or_default() {
            let target = entry.resolve(env)?;
            if targets.iter().any(|t: &ExternalTargetConfig| t.bucket == target.bucket) {
                anyhow::bail!("target bucket {} is listed twice", target.bucket);
            }
            targets.push(target);
        }
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles { cert_file, key_file }),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("tls_cert_file is set but tls_key_file is not: HTTPS needs both"),
            (None, Some(_)) => anyhow::bail!("tls_key_file is set but tls_cert_file is not: HTTPS needs both"),
        };
        Ok(RegionConfig {
            listen: self.listen.ok_or_else(|| missing("listen"))?,
            data_dir: self.data_dir.ok_or_else(|| missing("data_dir"))?,
            access_key: self.access_key.ok_or_else(|| missing("access_key"))?,
            secret_key: self.secret_key.ok_or_else(|| missing("secret_key"))?,
            domains: self.domains.unwrap_or_else(default_domains),
            region,
            peers,
            metrics_token: self.metrics_token.filter(|t| !t.is_empty()),
            min_free_bytes: self.min_free_bytes,
            stamp_tag: self.stamp_tag,
            lifecycle_day_ms: self.lifecycle_day_ms.filter(|d| *d > 0),
            sse_master_key_file: self.sse_master_key_file,
            tls,
            tls_ca_file: self.tls_ca_file,
            targets,
        })
    }
}

/// Parses `name=url` peer arguments.
pub fn parse_peer(s: &str) -> Result<(String, String), String> {
    let (name, url) = s.split_once('=').ok_or_else(|| format!("peer must be REGION=URL, got {s:?}"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("peer URL must start with http:// or https://, got {url:?}"));
    }
    Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let file: PartialConfig = toml::from_str(
            r#"
region = "us-east-1"
listen = "127.0.0.1:9000"
data_dir = "/tmp/x"
access_key = "AK"
secret_key = "SK"
[peers]
eu-west-1 = "http://127.0.0.1:9001"
"#,
        )
        .unwrap();
        let flags = PartialConfig {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            metrics_token: Some("scrape".into()),
            ..Default::default()
        };
        let cfg = file.overlay(flags).finish().unwrap();
        assert_eq!(cfg.listen.port(), 9100);
        assert_eq!(cfg.metrics_token.as_deref(), Some("scrape"));
        assert_eq!(cfg.peers.get("eu-west-1").map(String::as_str), Some("http://127.0.0.1:9001"));
        assert!(PartialConfig::default().finish().is_err());
        assert!(toml::from_str::<PartialConfig>("bogus = 1").is_err());
        assert!(parse_peer("a=ftp://x").is_err());
        assert_eq!(cfg.stamp_tag, None);
    }

    /// The required fields, set.
    fn base() -> PartialConfig {
        PartialConfig {
            region: Some("r".into()),
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            access_key: Some("AK".into()),
            secret_key: Some("SK".into()),
            ..Default::default()
        }
    }

    #[test]
    fn targets_are_read_and_checked() {
        let env = |var: &str| (var == "BACKUP_SECRET").then(|| "from-env".to_owned());
        let with = |toml_text: &str| {
            let file: PartialConfig = toml::from_str(toml_text).expect("toml");
            base().overlay(file).finish_with_env(&env)
        };
        let cfg = with(
            r#"
[[targets]]
bucket = "acme-backup"
endpoint = "https://s3.eu-central-1.amazonaws.com/"
region = "eu-central-1"
access_key = "AKIA1"
secret_key = "in-file"

[[targets]]
bucket = "minio-copy"
endpoint = "http://minio:9000"
access_key = "AK2"
secret_key_env = "BACKUP_SECRET"
path_style = true
unversioned = true
"#,
        )
        .unwrap();
        assert_eq!(cfg.targets.len(), 2);
        let (aws, minio) = (&cfg.targets[0], &cfg.targets[1]);
        assert_eq!(
            (aws.endpoint.as_str(), aws.region.as_str()),
            ("https://s3.eu-central-1.amazonaws.com", "eu-central-1")
        );
        assert_eq!((aws.secret_key.as_str(), aws.path_style), ("in-file", false));
        assert_eq!(
            (minio.region.as_str(), minio.secret_key.as_str(), minio.path_style, minio.unversioned),
            ("us-east-1", "from-env", true, true)
        );
        assert!(!aws.unversioned, "targets are versioned unless declared otherwise");
        assert!(!format!("{cfg:?}").contains("in-file"), "secrets stay out of Debug");

        let entry = |extra: &str| format!("[[targets]]\nbucket = \"b-1\"\naccess_key = \"AK\"\n{extra}\n");
        let error = |text: &str| with(text).unwrap_err().to_string();
        let ok = "endpoint = \"http://h\"\nsecret_key = \"s\"";
        assert!(error(&entry("endpoint = \"ftp://h\"\nsecret_key = \"s\"")).contains("http:// or https://"));
        assert!(error(&entry("endpoint = \"http://h\"")).contains("secret_key or secret_key_env is required"));
        assert!(error(&entry("endpoint = \"http://h\"\nsecret_key_env = \"UNSET\"")).contains("UNSET"));
        assert!(
            error(&entry("endpoint = \"http://h\"\nsecret_key = \"s\"\nsecret_key_env = \"BACKUP_SECRET\""))
                .contains("not both")
        );
        assert!(error(&format!("{}{}", entry(ok), entry(ok))).contains("listed twice"));
        assert!(error(&entry(ok).replace("b-1", "Bad_Name")).contains("Bad_Name"));
        assert!(toml::from_str::<PartialConfig>(&entry("endpoint = \"http://h\"\nbogus = 1")).is_err());
        assert!(with(&entry(ok)).is_ok());
    }

    #[test]
    fn stamp_tag_is_checked() {
        let file: PartialConfig = toml::from_str("stamp_tag = 3").unwrap();
        assert_eq!(base().overlay(file).finish().unwrap().stamp_tag, Some(3));
        let over = PartialConfig { stamp_tag: Some(15), ..Default::default() };
        assert_eq!(base().overlay(over).finish().unwrap().stamp_tag, Some(15));
        let too_big = PartialConfig { stamp_tag: Some(16), ..Default::default() };
        let err = base().overlay(too_big).finish().unwrap_err().to_string();
        assert!(err.contains("stamp_tag must be from 0 to 15"), "{err}");
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let file: PartialConfig =
            toml::from_str("tls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\ntls_ca_file = \"/ca.pem\"").unwrap();
        let cfg = base().overlay(file).finish().unwrap();
        assert_eq!(cfg.tls, Some(TlsFiles { cert_file: "/c.pem".into(), key_file: "/k.pem".into() }));
        assert_eq!(cfg.tls_ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(base().finish().unwrap().tls, None);
        let half = PartialConfig { tls_cert_file: Some("/c.pem".into()), ..Default::default() };
        let err = base().overlay(half).finish().unwrap_err().to_string();
        assert!(err.contains("tls_key_file is not"), "{err}");
        let half = PartialConfig { tls_key_file: Some("/k.pem".into()), ..Default::default() };
        let err = base().overlay(half).finish().unwrap_err().to_string();
        assert!(err.contains("tls_cert_file is not"), "{err}");
    }
}
