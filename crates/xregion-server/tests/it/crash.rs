//! Crash consistency (design invariants 1 and 3): a region is SIGKILLed in the middle of a
//! stream of concurrent PUTs. After the restart every acknowledged version is readable with
//! its exact bytes, and every version that is visible at all is whole: its bytes are exactly
//! one payload a writer sent for that key (nothing half-written, nothing from another write).
//! Blob files the crash left without metadata are deleted by the restarted region.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;

const WRITERS: usize = 12;
const ROUNDS: usize = 3;

/// The payload of write `n` of writer `w`: size varies from tiny to multi-chunk; the content
/// names the write, so a mixed-up or truncated version cannot match another one.
fn payload(w: usize, n: usize) -> Vec<u8> {
    let size = [1usize, 700, 4096, 65_537, 300_000, 1_100_000][(w + n) % 6];
    let tag = format!("w{w}-n{n}|");
    tag.as_bytes().iter().copied().cycle().take(size).collect()
}

#[derive(Default, Clone)]
struct Ledger {
    /// (key, version id) → md5 of an acknowledged write.
    acked: BTreeMap<(String, String), String>,
    /// key → md5s of every write attempted on it (acknowledged or not).
    attempted: BTreeMap<String, BTreeSet<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_concurrent_puts_loses_no_acknowledged_version() {
    sigkill_during_puts(false).await;
}

/// The same into a bucket whose default encryption seals every version (SSE-S3): the key
/// file, wrapped keys and sealed bytes survive the crash with their versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_concurrent_encrypted_puts_loses_no_acknowledged_version() {
    sigkill_during_puts(true).await;
}

async fn sigkill_during_puts(encrypted: bool) {
    let mut region = TestRegion::start("us-east-1", &[]);
    let bucket = create_versioned_bucket(&region.client(), "crash").await;
    if encrypted {
        let default = aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
            .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .build()
            .expect("default");
        let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .build();
        let config =
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("config");
        let put = region.client().put_bucket_encryption().bucket(&bucket).server_side_encryption_configuration(config);
        put.send().await.expect("default encryption");
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next_write = [0usize; WRITERS];

    for round in 0..ROUNDS {
        let s3 = region.client();
        let mut tasks = Vec::new();
        for (w, next) in next_write.iter_mut().enumerate() {
            let (s3, bucket, ledger) = (s3.clone(), bucket.clone(), ledger.clone());
            let start = *next;
            *next += 10_000; // each round's writes are distinct
            tasks.push(tokio::spawn(async move {
                for n in start.. {
                    // Writers share a few keys so that keys get many versions.
                    let key = format!("key-{}", (w + n) % 5);
                    let body = payload(w, n);
                    let md5 = md5_hex(&body);
                    ledger.lock().unwrap().attempted.entry(key.clone()).or_default().insert(md5.clone());
                    let res = s3.put_object().bucket(&bucket).key(&key).body(ByteStream::from(body)).send().await;
                    match res {
                        Ok(out) => {
                            let vid = out.version_id().expect("versioned PUT returns a version id").to_owned();
                            assert_eq!(out.e_tag().map(unquote), Some(md5.as_str()));
                            assert_eq!(out.server_side_encryption().is_some(), encrypted);
                            ledger.lock().unwrap().acked.insert((key, vid), md5);
                        }
                        Err(_) => return n - start, // the server is gone
                    }
                }
                unreachable!()
            }));
        }
        // Let the stream run, then crash in the middle of it.
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        region.kill();
        let mut writes = 0;
        for t in tasks {
            writes += t.await.expect("writer task");
        }
        assert!(writes > WRITERS, "round {round}: the writers barely ran ({writes} writes)");
        region.restart();
        let acked = ledger.lock().unwrap().acked.len();
        eprintln!("round {round}: {writes} writes attempted so far this round, {acked} acknowledged in total");
        let snapshot = ledger.lock().unwrap().clone();
        verify(&region, &bucket, &snapshot).await;
    }
}

async fn verify(region: &TestRegion, bucket: &str, ledger: &Ledger) {
    let s3 = region.client();
    // Every visible version (paginated) must be whole and must be one of the attempted writes.
    let mut visible = BTreeMap::new();
    // Versions above the inline limit (64 KiB) have one blob file each.
    let mut blob_backed = BTreeSet::new();
    let (mut key_marker, mut vid_marker) = (None::<String>, None::<String>);
    loop {
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(vid_marker.clone())
            .send()
            .await
            .expect("list versions after restart");
        assert!(out.delete_markers().is_empty(), "no delete marker was ever written");
        for v in out.versions() {
            let key = v.key().expect("key").to_owned();
            let vid = v.version_id().expect("version id").to_owned();
            if v.size().unwrap_or_default() > 64 * 1024 {
                blob_backed.insert((key.clone(), vid.clone()));
            }
            visible.insert((key, vid), v.e_tag().map(|e| unquote(e).to_owned()).unwrap_or_default());
        }
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_owned);
        vid_marker = out.next_version_id_marker().map(str::to_owned);
    }
    let blob_versions = blob_backed.len();
    for ((key, vid), md5) in &ledger.acked {
        assert_eq!(visible.get(&(key.clone(), vid.clone())), Some(md5), "acknowledged {key} {vid} lost");
    }
    for ((key, vid), etag) in &visible {
        let attempted = ledger.attempted.get(key).expect("a visible key was written");
        assert!(attempted.contains(etag), "{key} {vid} has an ETag no writer sent");
        let body = get_body(&s3, bucket, key, Some(vid)).await;
        assert_eq!(&md5_hex(&body), etag, "{key} {vid}: bytes do not match the ETag (half-written?)");
    }
    // Blobs finished but never committed (or freed but not deleted) when the region died are
    // deleted by its orphan collection, which runs in the background after the restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let files = count_blob_files(&region.data_dir().join("blobs"));
        if files == blob_versions {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{files} blob files for {blob_versions} blob-backed versions");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Finished blob files (the fan-out directories; not `tmp/`).
fn count_blob_files(blobs: &std::path::Path) -> usize {
    std::fs::read_dir(blobs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_name() != "tmp" && d.path().is_dir())
        .map(|d| std::fs::read_dir(d.path()).map(|files| files.count()).unwrap_or(0))
        .sum()
}
