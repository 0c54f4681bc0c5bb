//! TLS of a region: the certificate it serves (`tls_cert_file`, `tls_key_file`) and what it
//! trusts when it calls other regions and S3 services (the system's roots and `tls_ca_file`).
//!
//! rustls (on aws-lc-rs, as everywhere in the tree) does the protocol; this module only loads
//! PEM files into its configurations, with errors that name the file, and swaps in a renewed
//! certificate without a restart ([`ServerTls::reload_if_changed`]): ACME clients such as
//! certbot replace the files every few weeks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors of loading TLS files.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("TLS file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file holds no usable PEM section of the kind expected, or a broken one.
    #[error("TLS file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (for example a key that is not the certificate's).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The provider every configuration uses: aws-lc-rs, named rather than taken from a
/// process-wide default, which would depend on which crates enabled which rustls features.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File { path: path.display().to_string(), source })
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid { path: path.display().to_string(), reason: reason.to_string() }
}

/// Every certificate of a PEM file (a chain, or a bundle of CAs); none is an error.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "no CERTIFICATE section"));
    }
    Ok(certs)
}

/// A certificate chain and its key, checked to belong together.
fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_file, &read(cert_file)?)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|e| invalid(key_file, format!("no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}")))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| TlsError::Config(format!("{} and {}: {e}", cert_file.display(), key_file.display())))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What the operator report says of a served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The end of its validity (`notAfter`), unix milliseconds.
    pub not_after_ms: i64,
    /// Its subject alternative names (DNS names and IP addresses), else its common name.
    pub names: Vec<String>,
}

impl CertificateInfo {
    /// Reads a certificate (DER); `None` if it does not parse (rustls accepted it, so that
    /// would be a parser gap, not a reason to refuse the certificate).
    fn of(der: &CertificateDer<'_>) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let not_after_ms = cert.validity().not_after.timestamp().saturating_mul(1000);
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => names.push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                        16 => names.push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_owned));
        }
        Some(Self { not_after_ms, names })
    }
}

/// The certificate a region serves, reloaded from its files when they change.
#[derive(Debug)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    current: Arc<Current>,
}

/// The certificate in use and the files' modification times it was loaded at.
#[derive(Debug)]
struct Current {
    cert_file: PathBuf,
    key_file: PathBuf,
    loaded: RwLock<(Arc<CertifiedKey>, Option<SystemTime>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&loaded.0))
    }
}

impl ServerTls {
    /// Loads the certificate chain (leaf first, PEM) and its private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let stamps = (modified(cert_file), modified(key_file));
        let key = certified_key(cert_file, key_file)?;
        let current = Arc::new(Current {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            loaded: RwLock::new((Arc::new(key), stamps.0, stamps.1)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only (hyper's http1 feature).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), current })
    }

    /// The configuration to accept connections with (it always serves the current certificate).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Loads the files again if either changed since they were loaded; `Ok(true)` if the
    /// certificate in use was replaced. A pair that does not load (a renewal half written,
    /// a key that is not the certificate's) leaves the current certificate in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let current = &self.current;
        let stamps = (modified(&current.cert_file), modified(&current.key_file));
        {
            let loaded = current.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if (loaded.1, loaded.2) == stamps {
                return Ok(false);
            }
        }
        let key = certified_key(&current.cert_file, &current.key_file)?;
        let mut loaded = current.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *loaded = (Arc::new(key), stamps.0, stamps.1);
        Ok(true)
    }

    /// Expiry and names of the certificate in use (`None` if it does not parse).
    pub fn info(&self) -> Option<CertificateInfo> {
        let loaded = self.current.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.0.cert.first().and_then(CertificateInfo::of)
    }

    /// The certificate chain in use (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        let loaded = self.current.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.0.cert.clone()
    }
}

/// What a region trusts when it calls peers and S3 services over `https://`: the system's
/// root certificates and, if given, the CAs of a PEM bundle (a private CA, or a peer's
/// self-signed certificate).
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    extra_pem: Option<Arc<Vec<u8>>>,
}

impl ClientTls {
    /// The system's roots (as `SSL_CERT_FILE` / `SSL_CERT_DIR` or the platform name them)
    /// plus every certificate of `ca_file`.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        // A system without a CA store still reaches peers trusted through `ca_file`; its
        // errors (an unreadable file in the store) only cost public roots.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        let extra_pem = match ca_file {
            Some(path) => {
                let pem = read(path)?;
                for cert in certificates(path, &pem)? {
                    roots.add(cert).map_err(|e| invalid(path, format!("not a usable CA certificate: {e}")))?;
                }
                Some(Arc::new(pem))
            }
            None => None,
        };
        // No ALPN here: hyper-rustls sets it for the HTTP versions its connector enables.
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { config: Arc::new(config), extra_pem })
    }

    /// The rustls configuration for hyper clients (without ALPN protocols).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The PEM of `ca_file`, for clients that build their own trust store (the AWS SDK's).
    pub fn extra_ca_pem(&self) -> Option<&[u8]> {
        self.extra_pem.as_deref().map(Vec::as_slice)
    }
}

/// Certificates for `xregion dev --tls` and tests: a CA and, per name list, a leaf it signs.
pub mod generate {
    use super::TlsError;

    /// A certificate and its private key, PEM.
    #[derive(Debug, Clone)]
    pub struct Pem {
        /// The certificate.
        pub cert: String,
        /// Its private key (PKCS#8).
        pub key: String,
    }

    /// A private CA able to sign leaf certificates.
    pub struct Ca {
        pem: Pem,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    fn failed(e: rcgen::Error) -> TlsError {
        TlsError::Config(format!("generating a certificate: {e}"))
    }

    impl Ca {
        /// A new CA named `name` (P-256, valid until 4096, as rcgen's default).
        pub fn new(name: &str) -> Result<Self, TlsError> {
            let key = rcgen::KeyPair::generate().map_err(failed)?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).map_err(failed)?;
            let pem = Pem { cert: cert.pem(), key: key.serialize_pem() };
            Ok(Self { pem, issuer: rcgen::Issuer::new(params, key) })
        }

        /// The CA's certificate and key.
        pub fn pem(&self) -> &Pem {
            &self.pem
        }

        /// A server certificate for `names` (DNS names or IP addresses) signed by this CA.
        pub fn leaf(&self, names: &[&str]) -> Result<Pem, TlsError> {
            let key = rcgen::KeyPair::generate().map_err(failed)?;
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = rcgen::CertificateParams::new(names.clone()).map_err(failed)?;
            if let Some(first) = names.first() {
                params.distinguished_name.push(rcgen::DnType::CommonName, first.as_str());
            }
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
            Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write scratch PEM files")]
mod tests {
    use super::generate::Ca;
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn loads_a_chain_and_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA").expect("ca");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]).expect("leaf");
        let cert = write(dir.path(), "cert.pem", &format!("{}{}", leaf.cert, ca.pem().cert));
        let key = write(dir.path(), "key.pem", &leaf.key);
        let tls = ServerTls::load(&cert, &key).expect("load");
        assert_eq!(tls.chain().len(), 2);
        let info = tls.info().expect("certificate info");
        assert_eq!(info.names, ["localhost", "127.0.0.1"]);
        // rcgen's default validity ends on 4096-01-01.
        assert_eq!(info.not_after_ms, 67_090_118_400_000);
        assert_eq!(tls.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA").expect("ca");
        let leaf = ca.leaf(&["localhost"]).expect("leaf");
        let other = ca.leaf(&["localhost"]).expect("leaf");
        let cert = write(dir.path(), "cert.pem", &leaf.cert);
        let key = write(dir.path(), "key.pem", &leaf.key);
        let wrong_key = write(dir.path(), "other.pem", &other.key);
        let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");

        let missing = ServerTls::load(&dir.path().join("absent.pem"), &key).expect_err("missing");
        assert!(matches!(missing, TlsError::File { .. }), "{missing}");
        assert!(missing.to_string().contains("absent.pem"), "{missing}");
        let no_cert = ServerTls::load(&garbage, &key).expect_err("garbage");
        assert!(no_cert.to_string().contains("no CERTIFICATE section"), "{no_cert}");
        let no_key = ServerTls::load(&cert, &garbage).expect_err("no key");
        assert!(no_key.to_string().contains("no private key"), "{no_key}");
        // A key swapped for another certificate's is refused rather than failing every handshake.
        let mismatch = ServerTls::load(&cert, &wrong_key).expect_err("mismatch");
        assert!(matches!(mismatch, TlsError::Config(_)), "{mismatch}");
        let bad_ca = ClientTls::new(Some(&garbage)).expect_err("bad CA file");
        assert!(bad_ca.to_string().contains("garbage.pem"), "{bad_ca}");
    }

    #[test]
    fn a_renewed_certificate_replaces_the_old_one_and_a_broken_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA").expect("ca");
        let first = ca.leaf(&["localhost"]).expect("leaf");
        let cert = write(dir.path(), "cert.pem", &first.cert);
        let key = write(dir.path(), "key.pem", &first.key);
        let tls = ServerTls::load(&cert, &key).expect("load");
        assert!(!tls.reload_if_changed().expect("unchanged"));
        let before = tls.chain();

        // Half a renewal: a new certificate whose key is not there yet.
        let second = ca.leaf(&["localhost"]).expect("leaf");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        write(dir.path(), "cert.pem", &second.cert);
        std::fs::File::options().write(true).open(&cert).and_then(|f| f.set_modified(later)).expect("mtime");
        assert!(tls.reload_if_changed().is_err());
        assert_eq!(tls.chain(), before, "the old certificate stays in use");

        write(dir.path(), "key.pem", &second.key);
        std::fs::File::options().write(true).open(&key).and_then(|f| f.set_modified(later)).expect("mtime");
        assert!(tls.reload_if_changed().expect("reload"));
        assert_ne!(tls.chain(), before);
        assert!(!tls.reload_if_changed().expect("unchanged again"));
    }

    #[test]
    fn a_ca_bundle_is_trusted_and_kept_for_other_clients() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA").expect("ca");
        let path = write(dir.path(), "ca.pem", &ca.pem().cert);
        let tls = ClientTls::new(Some(&path)).expect("client");
        assert_eq!(tls.extra_ca_pem(), Some(ca.pem().cert.as_bytes()));
        assert!(ClientTls::new(None).expect("system roots only").extra_ca_pem().is_none());
    }
}
