//! The HTTP(S) clients replication sends with, and what they trust for `https://`
//! destinations: the system's roots and the region's `tls_ca_file`
//! ([`xregion_crypto::tls::ClientTls`]). One transport per region; the AWS SDK clients of all
//! destinations share its connection pool.

use std::time::Duration;

use aws_sdk_s3::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use xregion_crypto::tls::ClientTls;

/// A hyper connector for `http://` and `https://` URLs.
pub type Connector = HttpsConnector<HttpConnector>;

/// The clients' TLS, for hyper and for the AWS SDK.
#[derive(Clone)]
pub struct Transport {
    tls: ClientTls,
    sdk: SharedHttpClient,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("extra_ca", &self.tls.extra_ca_pem().is_some()).finish()
    }
}

impl Transport {
    /// Clients trusting what `tls` trusts.
    pub fn new(tls: ClientTls) -> Self {
        let mut trust = TrustStore::empty().with_native_roots(true);
        if let Some(pem) = tls.extra_ca_pem() {
            trust = trust.with_pem_certificate(pem.to_vec());
        }
        let sdk = match TlsContext::builder().with_trust_store(trust).build() {
            Ok(context) => aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https(),
            // `build` cannot fail today (it only moves its fields); if it ever does, the
            // SDK's own client still trusts the system's roots.
            Err(e) => {
                tracing::warn!(error = %e, "TLS context for the AWS SDK; using the system's roots only");
                aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https()
            }
        };
        Self { tls, sdk }
    }

    /// The HTTP client for `aws-sdk-s3` clients.
    pub fn sdk_http_client(&self) -> SharedHttpClient {
        self.sdk.clone()
    }

    /// A hyper connector for both schemes ([`connector`]).
    pub fn connector(&self, connect_timeout: Option<Duration>) -> Connector {
        connector(&self.tls, connect_timeout)
    }
}

/// A hyper connector for both schemes trusting what `tls` trusts: NODELAY (a small request's
/// header and body leave in separate writes) and `connect_timeout`. For a client that needs
/// no AWS SDK client beside it (`xregion status`).
pub fn connector(tls: &ClientTls, connect_timeout: Option<Duration>) -> Connector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    // `https_or_http` leaves the scheme check to the URL; hyper-rustls needs `enforce_http`
    // off to see `https://` URLs.
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.config()).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// Displays an error with its sources (hyper's `client error (Connect)` says nothing of a
/// refused connection or an untrusted certificate; its sources do).
pub struct DisplayErr<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for DisplayErr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
