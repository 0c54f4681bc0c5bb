//! HTTPS: regions serving a certificate (`--tls-cert-file`, `--tls-key-file`) and trusting a
//! private CA for their peers (`--tls-ca-file`). Replication between regions and within one,
//! forwarded requests, the operator report, and what a client or region that does not trust
//! the certificate gets.

use std::path::{Path, PathBuf};

use xregion_crypto::tls::generate::Ca;

use crate::boto3::{boto3_or_skip, run_boto3};
use crate::common::*;
use crate::replication::{
    configure, eventually, put_rules, status, wait_completed, wait_same_versions, whole_bucket_rule,
};

/// A CA and a certificate for 127.0.0.1 it signs, written to a temporary directory.
struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl TestPki {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("xregion-tls-").tempdir().expect("temp dir");
        let ca = Ca::new("xregion test CA").expect("CA");
        let leaf = ca.leaf(&["localhost", "127.0.0.1"]).expect("leaf");
        std::fs::write(dir.path().join("ca.pem"), &ca.pem().cert).expect("write");
        std::fs::write(dir.path().join("cert.pem"), &leaf.cert).expect("write");
        std::fs::write(dir.path().join("key.pem"), &leaf.key).expect("write");
        Self { ca_pem: ca.pem().cert.clone(), dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Serve the certificate; trust the CA for peers.
    fn server_flags(&self) -> Vec<String> {
        let mut flags = self.serve_only_flags();
        flags.extend(["--tls-ca-file".to_owned(), self.arg("ca.pem")]);
        flags
    }

    /// Serve the certificate, trusting only the system's roots for peers.
    fn serve_only_flags(&self) -> Vec<String> {
        vec!["--tls-cert-file".to_owned(), self.arg("cert.pem"), "--tls-key-file".to_owned(), self.arg("key.pem")]
    }
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Two regions serving HTTPS, each trusting the other through the CA.
fn tls_pair(pki: &TestPki) -> Vec<TestRegion> {
    TestRegion::start_many_tls(&["us-east-1", "eu-west-1"], &refs(&pki.server_flags()), &pki.ca_pem)
}

/// Every kind of replication travels over HTTPS: small versions in batches, a multipart
/// version through the SDK, a tag change and a delete marker to the other region; and the same
/// to a bucket of the same region (through its loopback listener, the certificate naming the
/// public host). A request for the other region's bucket is forwarded there over HTTPS.
#[tokio::test]
async fn replication_across_and_within_regions_over_https() {
    let pki = TestPki::new();
    let regions = tls_pair(&pki);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    assert!(regions[0].endpoint().starts_with("https://"));
    let src = create_versioned_bucket(&sc, "tls-src").await;
    let dst = create_versioned_bucket(&dc, "tls-dst").await;
    let same = create_versioned_bucket(&sc, "tls-same").await;
    put_rules(
        &sc,
        &src,
        vec![
            whole_bucket_rule("to-eu", 1, &dst, true).build().expect("rule"),
            whole_bucket_rule("to-same", 2, &same, true).build().expect("rule"),
        ],
    )
    .await;

    let small = put(&sc, &src, "small", b"over TLS").await.version_id().expect("vid").to_owned();
    let first = vec![b'a'; 5 * 1024 * 1024];
    let second = vec![b'b'; 1024 * 1024];
    let large = multipart_put(&sc, &src, "large", (&first, &second), None).await;
    let large = large.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "small", &small).await;
    wait_completed(&sc, &src, "large", &large).await;
    sc.put_object_tagging()
        .bucket(&src)
        .key("small")
        .version_id(&small)
        .tagging(tagging(&[("travel", "tls")]))
        .send()
        .await
        .expect("tagging");
    sc.delete_object().bucket(&src).key("gone").send().await.expect("delete marker");

    for (client, bucket) in [(&dc, &dst), (&sc, &same)] {
        wait_same_versions(&sc, &src, client, bucket).await;
        assert_eq!(get_body(client, bucket, "small", Some(&small)).await, b"over TLS");
        let head = client.head_object().bucket(bucket).key("large").send().await.expect("head large");
        assert_eq!(head.version_id(), Some(large.as_str()));
        assert_eq!(head.replication_status().map(|s| s.as_str()), Some("REPLICA"));
        eventually("the tag change on the replica", || async {
            let tags = client.get_object_tagging().bucket(bucket).key("small").send().await.ok()?;
            (tags.tag_set().first().map(|t| t.value()) == Some("tls")).then_some(())
        })
        .await;
    }
    // Forwarded: the source's version, asked of the other region.
    assert_eq!(status(&dc, &src, "small", &small).await.as_deref(), Some("COMPLETED"));
    assert_eq!(get_body(&dc, &src, "large", None).await.len(), first.len() + second.len());
}

/// A plain-HTTP client on the HTTPS port is told what is wrong (400 with S3's error XML),
/// and an HTTPS client that does not trust the certificate is refused by the handshake.
#[tokio::test]
async fn clients_that_do_not_speak_or_trust_the_tls_get_clear_errors() {
    let pki = TestPki::new();
    let region =
        TestRegion::start_many_tls(&["us-east-1"], &refs(&pki.server_flags()), &pki.ca_pem).pop().expect("region");
    let plain = format!("http://127.0.0.1:{}/", region.port());
    let resp = http_client(None).get(&plain).send().await.expect("plain request");
    let resp = RawResponse::read(resp).await;
    assert_eq!(resp.status, 400);
    assert_eq!(xml_element(&resp.text(), "Code").as_deref(), Some("BadRequest"));
    assert!(resp.text().contains("use https://"), "{}", resp.text());

    // Trusting another CA: the handshake fails, nothing is served.
    let other = Ca::new("another CA").expect("CA");
    let stranger = sdk_client_trusting(&region.endpoint(), region.name(), &other.pem().cert);
    let err = stranger.list_buckets().send().await.expect_err("untrusted certificate");
    let text = format!("{:?}", err);
    assert!(text.contains("UnknownIssuer") || text.contains("certificate"), "{text}");
    // The region itself still serves those who trust it.
    region.client().list_buckets().send().await.expect("trusted client");
}

/// A region that does not trust its peer's certificate (its `tls_ca_file` gone after a
/// restart) keeps every new version PENDING, and the operator report says why; restarted with
/// the CA it replicates them all (nothing lost while the configuration was wrong).
#[tokio::test]
async fn an_untrusted_peer_certificate_keeps_replication_pending_until_fixed() {
    let pki = TestPki::new();
    let mut regions = tls_pair(&pki);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "tls-trust-src").await;
    let dst = create_versioned_bucket(&dc, "tls-trust-dst").await;
    configure(&sc, &src, &dst, false).await;
    let before = put(&sc, &src, "before", b"trusted").await.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "before", &before).await;

    regions[0].set_extra_args(&refs(&pki.serve_only_flags()));
    regions[0].restart();
    let sc = regions[0].client();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(put(&sc, &src, &format!("k{i}"), b"while untrusted").await.version_id().expect("vid").to_owned());
    }
    let report = eventually("the report to name the certificate error", || async {
        let out = xregion_status(&regions[0], Some(&pki.path("ca.pem")));
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        report.contains("UnknownIssuer").then_some(report)
    })
    .await;
    assert!(report.contains(&format!("to {dst}: unreachable")), "{report}");
    for (i, vid) in ids.iter().enumerate() {
        assert_eq!(status(&sc, &src, &format!("k{i}"), vid).await.as_deref(), Some("PENDING"));
    }

    regions[0].set_extra_args(&refs(&pki.server_flags()));
    regions[0].restart();
    let sc = regions[0].client();
    for (i, vid) in ids.iter().enumerate() {
        wait_completed(&sc, &src, &format!("k{i}"), vid).await;
    }
    wait_same_versions(&sc, &src, &dc, &dst).await;
}

/// `xregion status` reads an HTTPS region with `--ca-bundle` (or `AWS_CA_BUNDLE`), and says
/// why it cannot without it.
#[tokio::test]
async fn status_reads_https_regions_with_the_ca_bundle() {
    let pki = TestPki::new();
    let region =
        TestRegion::start_many_tls(&["us-east-1"], &refs(&pki.server_flags()), &pki.ca_pem).pop().expect("region");
    let ok = xregion_status(&region, Some(&pki.path("ca.pem")));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.starts_with(&format!("us-east-1 ({})", region.endpoint())), "{stdout}");
    // The certificate served, and when it ends (rcgen's default: 4096).
    assert!(
        stdout.contains("  tls: certificate for localhost, 127.0.0.1 expires Sun, 01 Jan 4096 00:00:00 GMT ("),
        "{stdout}"
    );
    let refused = xregion_status(&region, None);
    assert!(!refused.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(all.contains("UnknownIssuer"), "{all}");
}

/// boto3 over HTTPS, trusting the CA through `AWS_CA_BUNDLE` as users do: the smoke script.
#[test]
fn boto3_over_https_with_aws_ca_bundle() {
    if !boto3_or_skip("boto3 over HTTPS") {
        return;
    }
    let pki = TestPki::new();
    let region =
        TestRegion::start_many_tls(&["us-east-1"], &refs(&pki.server_flags()), &pki.ca_pem).pop().expect("region");
    let bucket = bucket_name("tls-boto3");
    run_boto3(&region, "smoke_boto3.py", &bucket, "boto3 smoke test passed", &[("AWS_CA_BUNDLE", &pki.arg("ca.pem"))]);
}

fn tagging(tags: &[(&str, &str)]) -> aws_sdk_s3::types::Tagging {
    let set = tags
        .iter()
        .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(*k).value(*v).build().expect("tag"))
        .collect::<Vec<_>>();
    aws_sdk_s3::types::Tagging::builder().set_tag_set(Some(set)).build().expect("tagging")
}

/// `xregion status` of `region`, trusting `ca` (`AWS_CA_BUNDLE`) if given.
fn xregion_status(region: &TestRegion, ca: Option<&Path>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xregion"));
    cmd.args(["status", "--endpoint", &region.endpoint()])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", region.name())
        .env_remove("AWS_CA_BUNDLE");
    if let Some(ca) = ca {
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    cmd.output().expect("run xregion status")
}
