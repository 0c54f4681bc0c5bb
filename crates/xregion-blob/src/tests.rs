//! Tests of the store as a whole: writes, reads, cleanup, deletes.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt as _;
use md5_reference::{Digest as _, Md5};
use proptest::prelude::*;
use xregion_types::{BlobRef, BlobSegment, ChecksumAlgorithm};

use crate::checksum;
use crate::{BlobError, BlobInfo, BlobStore, READ_CHUNK_BYTES, multipart_etag};

/// Deterministic test bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(seed) % 31) as u8 ^ seed).collect()
}

/// Writes `bytes` in chunks of `chunk` bytes and finishes.
async fn put(store: &BlobStore, bytes: &[u8], chunk: usize, alg: Option<ChecksumAlgorithm>) -> BlobInfo {
    let mut w = store.writer(alg).unwrap();
    for c in bytes.chunks(chunk.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn read_all(store: &BlobStore, blob: &BlobRef, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = store.read(blob, start, end).try_collect().await?;
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= READ_CHUNK_BYTES));
    Ok(chunks.concat())
}

/// Regular files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Waits until `dir` holds no files (cleanup of dropped writers happens in the background).
async fn wait_until_no_files(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_under(dir).is_empty() {
        assert!(Instant::now() < deadline, "files left: {:?}", files_under(dir));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn open() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_various_sizes_and_chunkings() {
    let (_dir, store) = open();
    for (len, chunk) in
        [(0, 1), (1, 1), (1000, 7), (300_000, 1), (300_000, 4096), (3_000_000, 65_536), (3_000_000, 3_000_000)]
    {
        // 300_000 bytes one at a time exercises the small-chunk coalescing.
        let bytes = data(len, 3);
        let info = put(&store, &bytes, chunk, Some(ChecksumAlgorithm::Crc64Nvme)).await;
        assert_eq!(info.segment.len, len as u64);
        assert_eq!(info.md5, Some(<[u8; 16]>::from(Md5::digest(&bytes))), "len {len} chunk {chunk}");
        assert_eq!(
            info.checksum,
            Some((ChecksumAlgorithm::Crc64Nvme, checksum::digest(ChecksumAlgorithm::Crc64Nvme, &bytes)))
        );
        let blob = BlobRef { segments: vec![info.segment] };
        assert_eq!(read_all(&store, &blob, 0, len as u64).await.unwrap(), bytes);
    }
}

#[tokio::test]
async fn empty_blob_has_a_file_and_known_digests() {
    let (dir, store) = open();
    let info = store.writer(Some(ChecksumAlgorithm::Sha256)).unwrap().finish().await.unwrap();
    assert_eq!(info.etag().as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(info.checksum_base64().unwrap(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    let blob = BlobRef { segments: vec![info.segment] };
    assert!(read_all(&store, &blob, 0, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn every_algorithm_matches_the_checksum_module() {
    let (_dir, store) = open();
    let bytes = data(1_500_000, 9);
    for alg in ChecksumAlgorithm::ALL {
        let info = put(&store, &bytes, 100_000, Some(alg)).await;
        assert_eq!(info.checksum, Some((alg, checksum::digest(alg, &bytes))), "{alg:?}");
    }
    let info = put(&store, b"hello world", 5, None).await;
    assert_eq!(info.checksum, None);
    assert_eq!(info.etag().as_deref(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_64_mib() {
    let (_dir, store) = open();
    let bytes = data(64 * 1024 * 1024, 1);
    let info = put(&store, &bytes, 64 * 1024, Some(ChecksumAlgorithm::Crc32c)).await;
    assert_eq!(info.md5, Some(<[u8; 16]>::from(Md5::digest(&bytes))));
    assert_eq!(info.checksum.unwrap().1, crc_fast::crc32_iscsi(&bytes).to_be_bytes());
    let blob = BlobRef { segments: vec![info.segment] };
    let mut stream = store.read(&blob, 0, bytes.len() as u64);
    let mut offset = 0;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        assert_eq!(chunk.len(), READ_CHUNK_BYTES.min(bytes.len() - offset));
        assert_eq!(&chunk[..], &bytes[offset..offset + chunk.len()]);
        offset += chunk.len();
    }
    assert_eq!(offset, bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_read_buffers_never_show_stale_bytes() {
    // Full-size read jobs take their buffers from a pool and return them when the chunks
    // drop. Reading two different blobs in turn (with odd lengths and offsets, so jobs end
    // short) must always give each blob's own bytes.
    let (_dir, store) = open();
    let len = 3 * crate::READ_JOB_BYTES + 12_345;
    let a = data(len, 3);
    let b = data(len, 4);
    let blob_a = BlobRef { segments: vec![put(&store, &a, 256 * 1024, None).await.segment] };
    let blob_b = BlobRef { segments: vec![put(&store, &b, 256 * 1024, None).await.segment] };
    for round in 0..3u64 {
        let start = round * 4097;
        assert_eq!(read_all(&store, &blob_a, start, len as u64).await.unwrap(), &a[start as usize..]);
        assert_eq!(read_all(&store, &blob_b, start, len as u64).await.unwrap(), &b[start as usize..]);
    }
}

#[test]
fn ranges_across_segments_match_an_in_memory_concat() {
    check_ranges_across_segments(None, 24, 700_000);
}

/// Ranges of objects made of several segments (a multipart object), written plain or
/// encrypted with `key`, read back as their in-memory concatenation.
fn check_ranges_across_segments(key: Option<std::sync::Arc<xregion_crypto::DataKey>>, cases: u32, max_len: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (_dir, store) = open();
    let config = ProptestConfig { cases, ..ProptestConfig::default() };
    proptest!(config, |(
        lens in prop::collection::vec(prop_oneof![Just(0usize), 1usize..10, 1usize..max_len], 0..5),
        ranges in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..8),
    )| {
        runtime.block_on(async {
            let mut whole = Vec::new();
            let mut segments = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                let bytes = data(*len, i as u8);
                let info = match &key {
                    Some(key) => put_sealed(&store, &bytes, 50_000, key).await,
                    None => put(&store, &bytes, 50_000, None).await,
                };
                segments.push(info.segment);
                whole.extend_from_slice(&bytes);
            }
            let blob = BlobRef { segments };
            for (a, b) in &ranges {
                let (a, b) = (a.index(whole.len() + 1), b.index(whole.len() + 1));
                let (start, end) = (a.min(b), a.max(b));
                let got = match &key {
                    Some(key) => read_sealed(&store, &blob, start as u64, end as u64, key).await.unwrap(),
                    None => read_all(&store, &blob, start as u64, end as u64).await.unwrap(),
                };
                assert!(got == whole[start..end], "range {start}..{end} of {lens:?}");
            }
            for segment in &blob.segments {
                store.delete(segment).await.unwrap();
            }
        });
    });
}

#[tokio::test]
async fn out_of_range_reads_are_errors() {
    let (_dir, store) = open();
    let info = put(&store, b"0123456789", 3, None).await;
    let blob = BlobRef { segments: vec![info.segment] };
    for (start, end) in [(0, 11), (5, 4), (11, 11)] {
        let err = read_all(&store, &blob, start, end).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{start}..{end}");
    }
    assert_eq!(read_all(&store, &blob, 10, 10).await.unwrap(), b"");
    assert_eq!(read_all(&store, &BlobRef::default(), 0, 0).await.unwrap(), b"");
}

#[tokio::test]
async fn missing_or_wrong_blob_files_are_stream_errors() {
    let (_dir, store) = open();
    let first = put(&store, &data(400_000, 1), 65_536, None).await.segment;
    let missing = BlobSegment { id: "00112233445566778899aabbccddeeff".into(), len: 10 };
    let blob = BlobRef { segments: vec![first.clone(), missing] };
    // The first segment streams fine, then the missing one is a NotFound item.
    let mut stream = store.read(&blob, 0, 400_010);
    let mut got = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => got += chunk.len(),
            Ok(None) => panic!("missing blob read without error"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("00112233445566778899aabbccddeeff"), "{err}");
    assert!(got <= 400_000);
    assert!(stream.try_next().await.unwrap().is_none(), "the stream ends after an error");

    let longer = BlobRef { segments: vec![BlobSegment { len: first.len + 1, ..first.clone() }] };
    let err = read_all(&store, &longer, 0, 1).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    let evil = BlobRef { segments: vec![BlobSegment { id: "../../../etc/passwd".into(), len: 1 }] };
    let err = read_all(&store, &evil, 0, 1).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_drop_leave_no_file() {
    let (dir, store) = open();
    let blobs = dir.path().join("blobs");
    let bytes = Bytes::from(data(3 * crate::WRITE_BATCH_BYTES + 5, 2));

    let mut w = store.writer(None).unwrap();
    w.write(bytes.clone()).await.unwrap();
    w.write(bytes.clone()).await.unwrap();
    w.abort().await;
    assert!(files_under(&blobs).is_empty(), "abort removes before returning");

    let mut w = store.writer(Some(ChecksumAlgorithm::Sha1)).unwrap();
    w.write(bytes.clone()).await.unwrap();
    w.write(bytes.clone()).await.unwrap(); // a job is likely still running now
    drop(w);
    wait_until_no_files(&blobs).await;

    let mut w = store.writer(None).unwrap();
    w.write(Bytes::from_static(b"small")).await.unwrap();
    drop(w);
    wait_until_no_files(&blobs).await;

    store.writer(None).unwrap().abort().await;
    assert!(files_under(&blobs).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_finish_leaves_no_orphan() {
    let (dir, store) = open();
    let blobs = dir.path().join("blobs");
    let mut w = store.writer(None).unwrap();
    w.write(Bytes::from(data(4 * crate::WRITE_BATCH_BYTES, 4))).await.unwrap();
    // Poll finish once (the commit job starts), then drop it.
    let cancelled = tokio::time::timeout(Duration::ZERO, w.finish()).await;
    assert!(cancelled.is_err(), "finish cannot complete without its blocking job");
    wait_until_no_files(&blobs).await;
}

/// Writes full batches until the writer reports the error of an earlier batch.
async fn first_error(w: &mut crate::BlobWriter) -> BlobError {
    let big = Bytes::from(data(crate::WRITE_BATCH_BYTES, 5));
    for _ in 0..1000 {
        if let Err(e) = w.write(big.clone()).await {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("writes into a missing directory kept succeeding");
}

#[tokio::test]
async fn write_errors_fail_the_writer_and_leave_nothing() {
    let (dir, store) = open();
    let blobs = dir.path().join("blobs");
    std::fs::remove_dir(blobs.join("tmp")).unwrap();

    let mut w = store.writer(None).unwrap();
    let err = first_error(&mut w).await;
    assert!(err.is_not_found(), "{err}");
    assert!(matches!(err, BlobError::Io(_)));
    assert!(w.write(Bytes::from_static(b"x")).await.is_err(), "a failed writer stays failed");
    assert!(w.finish().await.is_err());

    let w = store.writer(None).unwrap();
    assert!(w.finish().await.unwrap_err().is_not_found(), "finish reports the failed create");

    std::fs::create_dir(blobs.join("tmp")).unwrap();
    let info = put(&store, b"after", 2, None).await;
    assert_eq!(files_under(&blobs), vec![blobs.join(&info.segment.id[..2]).join(&info.segment.id)]);
}

#[tokio::test]
#[expect(clippy::disallowed_methods, reason = "the test makes a torn temporary file on purpose")]
async fn open_sweeps_temp_files_and_keeps_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let store = BlobStore::open(&blobs).unwrap();
    let kept = put(&store, b"keep me", 3, None).await;
    // Simulate a crash in the middle of a write: a temp file with no writer.
    let mut w = store.writer(None).unwrap();
    w.write(Bytes::from(data(crate::WRITE_BATCH_BYTES, 7))).await.unwrap();
    std::fs::write(blobs.join("tmp").join("0123456789abcdef0123456789abcdef.tmp"), b"partial").unwrap();
    std::mem::forget(w);
    std::fs::create_dir(blobs.join("tmp").join("stray-dir")).unwrap();
    drop(store);

    let store = BlobStore::open(&blobs).unwrap();
    let left: Vec<_> = std::fs::read_dir(blobs.join("tmp")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("stray-dir")], "only the unexpected directory stays");
    let blob = BlobRef { segments: vec![kept.segment] };
    assert_eq!(read_all(&store, &blob, 0, 7).await.unwrap(), b"keep me");
}

#[tokio::test]
async fn delete_is_idempotent_and_checks_ids() {
    let (dir, store) = open();
    let info = put(&store, b"bye", 1, None).await;
    store.verify(&info.segment).await.unwrap();
    let longer = BlobSegment { len: 4, ..info.segment.clone() };
    assert!(matches!(store.verify_blocking(&longer), Err(BlobError::Corrupt(_))));
    store.delete(&info.segment).await.unwrap();
    store.delete(&info.segment).await.unwrap();
    store.delete_blocking(&info.segment).unwrap();
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(matches!(store.verify(&info.segment).await, Err(BlobError::NotFound(_))));
    let blob = BlobRef { segments: vec![info.segment] };
    assert_eq!(read_all(&store, &blob, 0, 3).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);

    let evil = BlobSegment { id: "../tmp".into(), len: 0 };
    assert!(matches!(store.delete(&evil).await, Err(BlobError::Corrupt(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_fan_out() {
    let (dir, store) = open();
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let bytes = data(10_000 + usize::from(i) * 100, i);
            (put(&store, &bytes, 4096, None).await, bytes)
        }));
    }
    for task in tasks {
        let (info, bytes) = task.await.unwrap();
        let id = &info.segment.id;
        assert!(dir.path().join("blobs").join(&id[..2]).join(id).is_file());
        let blob = BlobRef { segments: vec![info.segment.clone()] };
        assert_eq!(read_all(&store, &blob, 0, bytes.len() as u64).await.unwrap(), bytes);
    }
}

#[test]
fn writer_outside_a_runtime_is_an_error() {
    let (_dir, store) = open();
    assert!(matches!(store.writer(None), Err(BlobError::Io(_))));
}

#[test]
fn multipart_etag_known_values() {
    // Reference computed with Python hashlib: md5(md5(b"part1") + md5(b"part2") + md5(b"part3")).
    let parts: Vec<[u8; 16]> = [b"part1", b"part2", b"part3"].iter().map(|p| Md5::digest(p).into()).collect();
    assert_eq!(multipart_etag(&parts), "5e9583dc343a55b829d3b99070a10015-3");
    assert_eq!(multipart_etag(&[Md5::digest(b"").into()]), "59adb24ef3cdbe0297f05b395827453f-1");
}

/// Throughput of 64 MiB puts against raw write + fsync of the same bytes (and MD5 alone, the
/// CPU ceiling), and of 64 MiB reads against raw reads, interleaved in the same run; prints
/// medians. `cargo test -p xregion-blob --release -- --ignored --nocapture bench_`; set
/// `XREGION_BENCH_DIR` to measure on another disk than the temp dir,
/// `XREGION_BENCH_CONCURRENCY` (default 2) and `XREGION_BENCH_ROUNDS` (default 5).
#[test]
#[ignore = "benchmark; run by hand in release mode"]
fn bench_64mib_put_vs_raw_write_fsync() {
    use std::io::{Read as _, Write as _};
    const SIZE: usize = 64 * 1024 * 1024;
    const NET_CHUNK: usize = 64 * 1024;
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let concurrency = env("XREGION_BENCH_CONCURRENCY", 2);
    let rounds = env("XREGION_BENCH_ROUNDS", 5);
    let per_task = 2;
    let base = std::env::var_os("XREGION_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let payload = Bytes::from(data(SIZE, 11));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir(&raw_dir).unwrap();
    let total_mib = (concurrency * per_task * SIZE) as f64 / (1024.0 * 1024.0);
    let mib_per_s = |start: Instant| total_mib / start.elapsed().as_secs_f64();
    // User + system CPU seconds of this process (Linux), to compare CPU per byte across noisy runs.
    let cpu_secs = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    };
    let mut cpu_ms_per_mib: [Vec<f64>; 4] = Default::default();
    let mut timed = |slot: usize, f: &dyn Fn() -> f64| {
        let before = cpu_secs();
        let rate = f();
        cpu_ms_per_mib[slot].push((cpu_secs() - before) * 1000.0 / total_mib);
        rate
    };

    // One readable blob per task, also as a plain file for the raw read.
    let read_blobs: Vec<BlobRef> = runtime.block_on(async {
        let mut blobs = Vec::new();
        for _ in 0..concurrency {
            let info = put(&store, &payload, 1 << 20, None).await;
            blobs.push(BlobRef { segments: vec![info.segment] });
        }
        blobs
    });
    let read_paths: Vec<_> = read_blobs
        .iter()
        .map(|b| {
            let id = &b.segments[0].id;
            dir.path().join("blobs").join(&id[..2]).join(id)
        })
        .collect();

    let raw_write = || {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..concurrency {
                let (payload, raw_dir) = (&payload, &raw_dir);
                s.spawn(move || {
                    for i in 0..per_task {
                        let path = raw_dir.join(format!("{t}-{i}"));
                        let mut f = std::fs::File::create(&path).unwrap();
                        for c in payload.chunks(1024 * 1024) {
                            f.write_all(c).unwrap();
                        }
                        f.sync_all().unwrap();
                        drop(f);
                        std::fs::remove_file(&path).unwrap();
                    }
                });
            }
        });
        mib_per_s(start)
    };
    let put_all = |alg: Option<ChecksumAlgorithm>| {
        let start = Instant::now();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (store, payload) = (store.clone(), payload.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_task {
                        let mut w = store.writer(alg).unwrap();
                        let mut offset = 0;
                        while offset < payload.len() {
                            let end = (offset + NET_CHUNK).min(payload.len());
                            w.write(payload.slice(offset..end)).await.unwrap();
                            offset = end;
                        }
                        let info = w.finish().await.unwrap();
                        store.delete(&info.segment).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        mib_per_s(start)
    };
    let md5_only = || {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..concurrency {
                let payload = &payload;
                s.spawn(move || {
                    for _ in 0..per_task {
                        std::hint::black_box(Md5::digest(payload));
                    }
                });
            }
        });
        mib_per_s(start)
    };
    let raw_read = || {
        let start = Instant::now();
        std::thread::scope(|s| {
            for path in &read_paths {
                s.spawn(move || {
                    let mut buf = vec![0u8; READ_CHUNK_BYTES];
                    for _ in 0..per_task {
                        let mut f = std::fs::File::open(path).unwrap();
                        while f.read(&mut buf).unwrap() > 0 {}
                    }
                });
            }
        });
        mib_per_s(start)
    };
    let store_read = || {
        let start = Instant::now();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for blob in &read_blobs {
                let (store, blob) = (store.clone(), blob.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per_task {
                        let mut stream = store.read(&blob, 0, SIZE as u64);
                        let mut n = 0;
                        while let Some(chunk) = stream.try_next().await.unwrap() {
                            n += chunk.len();
                        }
                        assert_eq!(n, SIZE);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        mib_per_s(start)
    };

    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..rounds {
        samples[0].push(timed(0, &raw_write));
        samples[1].push(timed(1, &|| put_all(None)));
        samples[2].push(timed(2, &|| put_all(Some(ChecksumAlgorithm::Crc32c))));
        samples[3].push(timed(3, &md5_only));
        samples[4].push(raw_read());
        samples[5].push(store_read());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [raw, put_none, put_crc, md5, raw_r, read] = samples.map(median);
    let [cpu_raw, cpu_put, cpu_crc, cpu_md5] = cpu_ms_per_mib.map(median);
    println!(
        "cpu ms/MiB (user+sys of this process; kernel write-back threads not counted): \
         raw write+fsync {cpu_raw:.2} | put {cpu_put:.2} | put+crc32c {cpu_crc:.2} | md5 alone {cpu_md5:.2}"
    );
    println!(
        "concurrency {concurrency}, {per_task} x 64 MiB per task, median of {rounds} rounds (MiB/s)\n\
         raw write+fsync {raw:.0} | put {put_none:.0} ({:.0} % of raw, {:.0} % of md5) | \
         put+crc32c {put_crc:.0} ({:.0} % of raw) | md5 alone {md5:.0}\n\
         raw read {raw_r:.0} | store read {read:.0} ({:.0} %)",
        100.0 * put_none / raw,
        100.0 * put_none / md5,
        100.0 * put_crc / raw,
        100.0 * read / raw_r,
    );
}

/// `writer_with` without MD5: the checksum is computed, MD5 is not (no ETag to offer).
#[tokio::test]
async fn writer_without_md5_computes_only_the_checksum() {
    let (_dir, store) = open();
    let bytes = data(3 * 1024 * 1024 + 17, 9);
    let mut w = store.writer_with(Some(ChecksumAlgorithm::Crc32c), false, None).unwrap();
    for c in bytes.chunks(100_000) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    assert_eq!((info.md5, info.etag()), (None, None));
    assert_eq!(info.checksum.unwrap().1, crc_fast::crc32_iscsi(&bytes).to_be_bytes());
    assert_eq!(info.segment.len, bytes.len() as u64);
}

/// A data key for the encryption tests.
fn data_key() -> std::sync::Arc<xregion_crypto::DataKey> {
    let master = xregion_crypto::MasterKey::from_hex(&"5a".repeat(32)).unwrap();
    std::sync::Arc::new(master.new_data_key().unwrap().0)
}

async fn put_sealed(store: &BlobStore, bytes: &[u8], chunk: usize, key: &xregion_crypto::DataKey) -> BlobInfo {
    let mut w = store.writer_with(Some(ChecksumAlgorithm::Crc32c), true, Some(key)).unwrap();
    for c in bytes.chunks(chunk.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn read_sealed(
    store: &BlobStore,
    blob: &BlobRef,
    start: u64,
    end: u64,
    key: &std::sync::Arc<xregion_crypto::DataKey>,
) -> std::io::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = store.read_sealed(blob, start, end, std::sync::Arc::clone(key), &[]).try_collect().await?;
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= READ_CHUNK_BYTES));
    Ok(chunks.concat())
}

/// SSE: the file holds sealed chunks, never the plaintext; the digests and the length are
/// the plaintext's; any range reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_blobs_round_trip_and_never_hold_the_plaintext() {
    let (dir, store) = open();
    let key = data_key();
    let c = xregion_crypto::CHUNK_BYTES;
    for (len, chunk) in [(0, 1), (1, 1), (c, 1000), (c + 1, 7_000), (3_000_000, 65_536), (2_100_000, 2_100_000)] {
        let bytes = data(len, 9);
        let info = put_sealed(&store, &bytes, chunk, &key).await;
        assert_eq!(info.segment.len, len as u64);
        assert_eq!(info.md5, Some(<[u8; 16]>::from(Md5::digest(&bytes))), "len {len}");
        assert_eq!(
            info.checksum,
            Some((ChecksumAlgorithm::Crc32c, checksum::digest(ChecksumAlgorithm::Crc32c, &bytes)))
        );
        let path = files_under(&dir.path().join("blobs")).into_iter().find(|p| p.ends_with(&info.segment.id)).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len() as u64, xregion_crypto::sealed_len(len as u64));
        if len >= 64 {
            assert!(!on_disk.windows(64).any(|w| w == &bytes[..64]), "plaintext on disk (len {len})");
        }
        let blob = BlobRef { segments: vec![info.segment.clone()] };
        assert_eq!(read_sealed(&store, &blob, 0, len as u64, &key).await.unwrap(), bytes);
        for (start, end) in [(0, len.min(5)), (len / 3, len / 2), (len.saturating_sub(c + 3), len), (c.min(len), len)] {
            let got = read_sealed(&store, &blob, start as u64, end as u64, &key).await.unwrap();
            assert!(got == bytes[start..end], "range {start}..{end} of {len}");
        }
        store.delete(&info.segment).await.unwrap();
    }
}

/// Ranges over several encrypted segments (a multipart object) match the plaintext.
#[test]
fn encrypted_ranges_across_segments_match_an_in_memory_concat() {
    check_ranges_across_segments(Some(data_key()), 16, 1_500_000);
}

/// Replaces a file's bytes (a test damaging a blob on purpose).
fn overwrite(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    std::fs::File::create(path).unwrap().write_all(bytes).unwrap();
}

/// A changed byte, a truncated file or the wrong key is an `InvalidData` read error, never
/// other bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_encrypted_blobs_fail_to_read() {
    let (dir, store) = open();
    let key = data_key();
    let bytes = data(200_000, 4);
    let info = put_sealed(&store, &bytes, 10_000, &key).await;
    let blob = BlobRef { segments: vec![info.segment.clone()] };
    let path = files_under(&dir.path().join("blobs")).into_iter().find(|p| p.ends_with(&info.segment.id)).unwrap();
    let original = std::fs::read(&path).unwrap();

    let other = data_key();
    let err = read_sealed(&store, &blob, 0, 10, &other).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");

    let mut changed = original.clone();
    changed[100_000] ^= 1;
    overwrite(&path, &changed);
    let err = read_sealed(&store, &blob, 0, 200_000, &key).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    // A range in an untouched chunk still reads.
    assert_eq!(read_sealed(&store, &blob, 0, 1000, &key).await.unwrap(), &bytes[..1000]);

    overwrite(&path, &original[..original.len() - 1]);
    let err = read_sealed(&store, &blob, 0, 10, &key).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

/// Writes `bytes` with [`crate::BlobWriter::keep_for_reading`], sealed with `key` if given.
async fn put_kept(store: &BlobStore, bytes: &[u8], chunk: usize, key: Option<&xregion_crypto::DataKey>) -> BlobInfo {
    let mut w = store.writer_with(None, true, key).unwrap();
    w.keep_for_reading();
    for c in bytes.chunks(chunk.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.finish().await.unwrap()
}

/// Removes a blob's file behind the store's back, so that only bytes kept in memory can
/// still answer a read of it.
#[allow(clippy::disallowed_methods, reason = "test: checks the file is gone")]
fn remove_file_of(dir: &Path, segment: &BlobSegment) {
    let path = files_under(&dir.join("blobs")).into_iter().find(|p| p.ends_with(&segment.id)).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!path.exists());
}

/// A blob written with `keep_for_reading` is read from memory while it is kept (shown by
/// removing its file first): whole, in ranges, across segments, plain and sealed; a blob
/// written without it, or too large to keep, is read from its file (here: gone, so the read
/// fails). The store's delete forgets the kept bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_blobs_are_read_from_memory_until_deleted() {
    let (dir, store) = open();
    let key = data_key();
    let first = data(1024 * 1024 + 5, 1);
    let second = data(300_000, 2);
    let a = put_kept(&store, &first, 100_000, None).await;
    let b = put_kept(&store, &second, 7_000, None).await;
    let sealed = put_kept(&store, &second, 65_536, Some(&key)).await;
    let plain_not_kept = put(&store, &second, 65_536, None).await;
    let too_big = put_kept(&store, &data(crate::RECENT_ENTRY_MAX_BYTES + 1, 3), 1 << 20, None).await;
    for segment in [&a.segment, &b.segment, &sealed.segment, &plain_not_kept.segment, &too_big.segment] {
        remove_file_of(dir.path(), segment);
    }

    let both = BlobRef { segments: vec![a.segment.clone(), b.segment.clone()] };
    let whole = [first.as_slice(), second.as_slice()].concat();
    let len = whole.len() as u64;
    assert_eq!(read_all(&store, &both, 0, len).await.unwrap(), whole);
    for (start, end) in [(0, 1), (1_048_570, 1_048_600), (5, len - 5), (len - 1, len)] {
        assert_eq!(read_all(&store, &both, start, end).await.unwrap(), &whole[start as usize..end as usize]);
    }
    let sealed_blob = BlobRef { segments: vec![sealed.segment.clone()] };
    assert_eq!(read_sealed(&store, &sealed_blob, 0, second.len() as u64, &key).await.unwrap(), second);
    assert_eq!(read_sealed(&store, &sealed_blob, 10, 20, &key).await.unwrap(), &second[10..20]);
    // A read of a sealed blob's raw bytes never gets the kept plaintext.
    let raw = BlobRef {
        segments: vec![BlobSegment {
            id: sealed.segment.id.clone(),
            len: xregion_crypto::sealed_len(second.len() as u64),
        }],
    };
    assert!(read_all(&store, &raw, 0, 10).await.is_err());
    assert!(read_all(&store, &BlobRef { segments: vec![plain_not_kept.segment.clone()] }, 0, 10).await.is_err());
    assert!(read_all(&store, &BlobRef { segments: vec![too_big.segment.clone()] }, 0, 10).await.is_err());

    store.delete(&a.segment).await.unwrap();
    assert!(read_all(&store, &BlobRef { segments: vec![a.segment.clone()] }, 0, 10).await.is_err());
    assert_eq!(read_all(&store, &BlobRef { segments: vec![b.segment.clone()] }, 0, 10).await.unwrap(), &second[..10]);
}
