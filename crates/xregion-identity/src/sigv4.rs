//! Signing the requests a region itself sends to other regions (peer lookups, batched replica
//! writes) with the deployment's credential: SigV4 as S3 checks it (service `s3`, payload
//! unsigned and declared in `x-amz-content-sha256`, the path signed as sent).

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::Credential;

/// Signs `req` for `region` with `credential`, now. The request must carry its `Host` header.
pub fn sign_request<B>(req: &mut http::Request<B>, credential: &Credential, region: &str) -> Result<(), String> {
    let identity: Identity =
        aws_credential_types::Credentials::new(&credential.access_key, &credential.secret_key, None, None, "xregion")
            .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let headers: Vec<(&str, &str)> =
        req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(req.method().as_str(), uri, headers.into_iter(), SignableBody::UnsignedPayload)
        .map_err(|e| format!("signable request: {e}"))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| format!("signing: {e}"))?.into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

/// Compares two secrets in constant time (no timing oracle on where they differ).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_the_credential_and_region() {
        let mut req = http::Request::get("http://127.0.0.1:9000/bucket?versioning")
            .header(http::header::HOST, "127.0.0.1:9000")
            .body(())
            .unwrap();
        let cred = Credential { access_key: "AKEXAMPLE".into(), secret_key: "secret".into() };
        sign_request(&mut req, &cred, "eu-west-1").unwrap();
        let auth = req.headers()[http::header::AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKEXAMPLE/"), "{auth}");
        assert!(auth.contains("/eu-west-1/s3/aws4_request"), "{auth}");
        assert_eq!(req.headers()["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("token", "token"));
        assert!(!same_secret("token", "tokem") && !same_secret("token", "token2") && !same_secret("", "x"));
    }
}
