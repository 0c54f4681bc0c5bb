//! Virtual-hosted-style addressing: `bucket.<domain>[:port]` and path style.
//!
//! s3s's `SingleDomain` does not strip `:port` from the Host header, so every request to a
//! non-default port came back `InvalidBucketName`; this host parser strips it and accepts
//! several base domains.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// Parses Host headers against a list of base domains.
#[derive(Debug, Clone)]
pub struct RegionHost {
    domains: Vec<String>,
}

impl RegionHost {
    /// A parser for these base domains (e.g. `localhost`, `s3.example.com`).
    pub fn new(domains: Vec<String>) -> Self {
        Self { domains }
    }
}

impl S3Host for RegionHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let without_port = match host.rsplit_once(':') {
            // IPv6 literals keep their brackets; only strip a trailing numeric port.
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for domain in &self.domains {
            if without_port == domain {
                return Ok(VirtualHost::new(domain.as_str()));
            }
            if let Some(bucket) = without_port.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        // Unknown host (an IP address, another name): path style.
        Ok(VirtualHost::new(without_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_port_and_finds_bucket() {
        let h = RegionHost::new(vec!["localhost".into()]);
        assert_eq!(h.parse_host_header("localhost:9000").unwrap().bucket(), None);
        assert_eq!(h.parse_host_header("photos.localhost:9000").unwrap().bucket(), Some("photos"));
        assert_eq!(h.parse_host_header("127.0.0.1:9000").unwrap().bucket(), None);
    }
}
