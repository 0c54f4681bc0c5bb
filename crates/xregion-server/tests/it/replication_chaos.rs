//! Replication under chaos with three regions (invariant 2; STS-5, STS-7, STS-10, TWO-1,
//! TWO-4, TWO-6, TWO-8, ELI-13, DEL-1): buckets X (us-east-1) ⇄ Y (eu-west-1) replicate both
//! ways with ReplicaModifications, and X also fans out to Z (ap-south-1). A client on each of X
//! and Y writes the same keys: PUTs from 100 bytes to a 2-part multipart upload, delete
//! markers, deletes of a version by id, and tag changes on originals and on replicas. Meanwhile
//! each region in turn is SIGKILLed and restarted (`XREGION_CHAOS_ROUNDS` times, 9 by default).
//! Afterwards:
//!
//! * X and Y hold the same versions and markers, in the same order, with the same ETags and
//!   sizes, except versions deleted by id, which are never replicated (DEL-1);
//! * every acknowledged write is among them, each version once;
//! * Z holds X's own versions and markers and none of Y's (a replica is not sent on, ELI-13);
//! * originals read COMPLETED where they were written (both destinations, STS-7), replicas
//!   read REPLICA, and every copy of a version carries the same tags (TWO-8's last writer).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ReplicaModifications, ReplicaModificationsStatus, ReplicationRule,
    SourceSelectionCriteria, Tag, Tagging,
};

use crate::common::*;
use crate::replication::{put_rules, whole_bucket_rule};

/// How long the regions may take to settle after the last restart. Longer than the other
/// tests' deadline: a destination that was down for a while is retried with back-off.
const SETTLE: Duration = Duration::from_secs(120);

/// Kill-and-restart rounds (three per region) unless `XREGION_CHAOS_ROUNDS` asks for more,
/// for a longer soak by hand.
const ROUNDS: usize = 9;

/// A whole-bucket rule to `dst` with delete-marker replication, and replica modification
/// sync when `sync_replicas`.
fn rule(id: &str, priority: i32, dst: &str, sync_replicas: bool) -> ReplicationRule {
    let mut builder = whole_bucket_rule(id, priority, dst, true);
    if sync_replicas {
        let rm = ReplicaModifications::builder().status(ReplicaModificationsStatus::Enabled).build().expect("rm");
        builder =
            builder.source_selection_criteria(SourceSelectionCriteria::builder().replica_modifications(rm).build());
    }
    builder.build().expect("rule")
}

/// What one writer saw acknowledged, and what it may have done without knowing.
#[derive(Default)]
struct Ledger {
    /// (key, version id, is a delete marker) of every acknowledged PUT, upload or marker.
    acked: Vec<(String, String, bool)>,
    /// Versions this writer tried to delete by id (whether or not the answer arrived).
    deleted: HashSet<(String, String)>,
    /// Writes whose answer was an error: each may or may not have made a version.
    unknown: usize,
}

/// Versions either writer may pick for a tag change or a delete by id.
type Known = Arc<Mutex<Vec<(String, String)>>>;

fn pick(known: &Known) -> Option<(String, String)> {
    let known = known.lock().expect("known versions");
    (!known.is_empty()).then(|| known[rand::random::<u32>() as usize % known.len()].clone())
}

/// One client's workload on `bucket` until `stop`.
async fn write(client: Client, bucket: String, side: &'static str, known: Known, stop: Arc<AtomicBool>) -> Ledger {
    let mut ledger = Ledger::default();
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let unknown_before = ledger.unknown;
        let key = format!("k{}", rand::random::<u32>() % 10);
        let roll = rand::random::<u32>() % 100;
        if roll < 8 {
            match client.delete_object().bucket(&bucket).key(&key).send().await {
                Ok(out) => ledger.acked.push((key, out.version_id().expect("marker id").to_owned(), true)),
                Err(_) => ledger.unknown += 1,
            }
        } else if roll < 12 {
            // DEL-1: a delete naming a version (maybe a replica) is never replicated.
            if let Some((key, vid)) = pick(&known) {
                ledger.deleted.insert((key.clone(), vid.clone()));
                let _ = client.delete_object().bucket(&bucket).key(&key).version_id(&vid).send().await;
            }
        } else if roll < 32 {
            // An original or a replica (TWO-4); the version may not have arrived here yet.
            if let Some((key, vid)) = pick(&known) {
                let tag = Tag::builder().key("by").value(format!("{side}-{i}")).build().expect("tag");
                let tagging = Tagging::builder().tag_set(tag).build().expect("tagging");
                let _ = client
                    .put_object_tagging()
                    .bucket(&bucket)
                    .key(&key)
                    .version_id(&vid)
                    .tagging(tagging)
                    .send()
                    .await;
            }
        } else {
            let written = if roll < 35 {
                multipart(&client, &bucket, &key, i).await
            } else {
                let size = [100usize, 4096, 70_000, 1_500_000][(roll % 4) as usize];
                let body = ByteStream::from(vec![(i % 251) as u8; size]);
                let tagging = format!("from={side}");
                let out = client.put_object().bucket(&bucket).key(&key).body(body).tagging(tagging).send().await;
                out.ok().and_then(|o| o.version_id().map(str::to_owned))
            };
            match written {
                Some(vid) => {
                    known.lock().expect("known versions").push((key.clone(), vid.clone()));
                    ledger.acked.push((key, vid, false));
                }
                None => ledger.unknown += 1,
            }
        }
        if ledger.unknown > unknown_before {
            // The region is probably down: do not spend the workload on refused connections.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    ledger
}

/// A two-part multipart upload (5 MiB + 1 KiB); its version id once completed.
async fn multipart(client: &Client, bucket: &str, key: &str, i: u32) -> Option<String> {
    let upload = client.create_multipart_upload().bucket(bucket).key(key).send().await.ok()?;
    let upload_id = upload.upload_id()?.to_owned();
    let mut parts = Vec::new();
    for (number, size) in [(1, 5 << 20), (2, 1024)] {
        let body = ByteStream::from(vec![(i % 7) as u8 + number as u8; size]);
        let req = client.upload_part().bucket(bucket).key(key).upload_id(&upload_id).part_number(number).body(body);
        let out = req.send().await.ok()?;
        parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let req = client.complete_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).multipart_upload(done);
    req.send().await.ok()?.version_id().map(str::to_owned)
}

/// One listed version or marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    marker: bool,
    etag: String,
    size: i64,
}

/// Every version and marker of a bucket by (key, version id).
async fn inventory(client: &Client, bucket: &str) -> Option<BTreeMap<(String, String), Listed>> {
    let mut all = BTreeMap::new();
    for page in version_pages(client, bucket).await? {
        for v in page.versions() {
            let id = (v.key()?.to_owned(), v.version_id()?.to_owned());
            let etag = v.e_tag().unwrap_or_default().to_owned();
            all.insert(id, Listed { marker: false, etag, size: v.size().unwrap_or(0) });
        }
        for m in page.delete_markers() {
            let id = (m.key()?.to_owned(), m.version_id()?.to_owned());
            all.insert(id, Listed { marker: true, etag: String::new(), size: 0 });
        }
    }
    Some(all)
}

/// Polls `probe` until it returns `Some`, or panics with `what` and the last probe's
/// explanation after [`SETTLE`].
async fn settle<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(why) if start.elapsed() > SETTLE => panic!("timed out waiting for {what}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn without(all: &BTreeMap<(String, String), Listed>, deleted: &HashSet<(String, String)>) -> Vec<(String, String)> {
    all.keys().filter(|id| !deleted.contains(*id)).cloned().collect()
}

async fn replication_status(client: &Client, bucket: &str, key: &str, vid: &str) -> Result<String, String> {
    let out = client.head_object().bucket(bucket).key(key).version_id(vid).send().await;
    let out = out.map_err(|e| format!("head {key} {vid}: {:?}", DebugSdkError(&e)))?;
    Ok(out.replication_status().map(|s| s.as_str().to_owned()).unwrap_or_default())
}

async fn tags(client: &Client, bucket: &str, key: &str, vid: &str) -> Result<Vec<(String, String)>, String> {
    let out = client.get_object_tagging().bucket(bucket).key(key).version_id(vid).send().await;
    let out = out.map_err(|e| format!("tags of {key} {vid}: {:?}", DebugSdkError(&e)))?;
    Ok(out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_two_way_and_fan_out_across_three_regions_lose_nothing() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (xc, yc, zc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let x = create_versioned_bucket(&xc, "chaos-x").await;
    let y = create_versioned_bucket(&yc, "chaos-y").await;
    let z = create_versioned_bucket(&zc, "chaos-z").await;
    put_rules(&xc, &x, vec![rule("to-y", 1, &y, true), rule("to-z", 2, &z, false)]).await;
    put_rules(&yc, &y, vec![rule("to-x", 1, &x, true)]).await;

    let known: Known = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [(xc.clone(), x.clone(), "x"), (yc.clone(), y.clone(), "y")]
        .into_iter()
        .map(|(client, bucket, side)| tokio::spawn(write(client, bucket, side, Arc::clone(&known), Arc::clone(&stop))))
        .collect();
    let rounds = std::env::var("XREGION_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(ROUNDS);
    for round in 0..rounds {
        let victim = round % 3;
        regions = kill_and_restart(regions, victim, 400, 1200).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut ledgers = Vec::new();
    for writer in writers {
        ledgers.push(writer.await.expect("writer"));
    }
    let (lx, ly) = (&ledgers[0], &ledgers[1]);
    assert!(
        lx.acked.len() > 20 && ly.acked.len() > 20,
        "both writers got through: {} and {}",
        lx.acked.len(),
        ly.acked.len()
    );
    let deleted: HashSet<(String, String)> = lx.deleted.union(&ly.deleted).cloned().collect();
    let unknown = lx.unknown + ly.unknown;

    // X and Y converge: the same versions apart from deletes by id, with the same content.
    let (ix, iy) = settle("X and Y to hold the same versions", || async {
        let (ix, iy) = (inventory(&xc, &x).await, inventory(&yc, &y).await);
        let (Some(ix), Some(iy)) = (ix, iy) else { return Err("a listing failed".to_owned()) };
        let (kx, ky) = (without(&ix, &deleted), without(&iy, &deleted));
        if kx != ky {
            let only_x: Vec<_> = kx.iter().filter(|v| !ky.contains(v)).collect();
            let only_y: Vec<_> = ky.iter().filter(|v| !kx.contains(v)).collect();
            return Err(format!("only in X: {only_x:?}; only in Y: {only_y:?}"));
        }
        Ok((ix, iy))
    })
    .await;
    for (id, listed) in &ix {
        if let Some(there) = iy.get(id) {
            assert_eq!(listed, there, "{id:?} differs between X and Y");
        }
    }
    // Every acknowledged write is there (unless deleted by id), each version once.
    for (ledger, name) in [(lx, "X"), (ly, "Y")] {
        for (key, vid, marker) in &ledger.acked {
            let id = (key.clone(), vid.clone());
            if deleted.contains(&id) {
                continue;
            }
            let listed = ix.get(&id).unwrap_or_else(|| panic!("acknowledged write {id:?} in {name} is missing"));
            assert_eq!(listed.marker, *marker, "{id:?}");
        }
    }
    let acked: HashSet<(String, String)> =
        lx.acked.iter().chain(&ly.acked).map(|(k, v, _)| (k.clone(), v.clone())).collect();
    assert_eq!(acked.len(), lx.acked.len() + ly.acked.len(), "version ids are unique");
    let extra = ix.keys().filter(|id| !acked.contains(*id)).count();
    assert!(extra <= unknown, "{extra} versions nobody acknowledged, only {unknown} writes had no answer");
    // The same order on both sides (keys, then newest first), latest included, for the keys
    // no delete by id touched.
    let touched: BTreeSet<&str> = deleted.iter().map(|(k, _)| k.as_str()).collect();
    let order = |all: Vec<(String, String, bool, bool)>| -> Vec<(String, String, bool, bool)> {
        all.into_iter().filter(|v| !touched.contains(v.0.as_str())).collect()
    };
    assert_eq!(order(all_versions_paged(&xc, &x).await), order(all_versions_paged(&yc, &y).await), "listing order");

    // Z gets X's own writes and nothing that only came to X as a replica.
    let from_y: HashSet<(String, String)> = ly.acked.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
    let iz = settle("Z to hold X's own writes", || async {
        let iz = inventory(&zc, &z).await.ok_or("listing Z failed")?;
        for (key, vid, _) in &lx.acked {
            let id = (key.clone(), vid.clone());
            if !deleted.contains(&id) && !iz.contains_key(&id) {
                return Err(format!("{id:?} has not reached Z"));
            }
        }
        Ok(iz)
    })
    .await;
    for (id, listed) in &iz {
        assert!(!from_y.contains(id), "{id:?}, a replica in X, was sent on to Z");
        if let Some(in_x) = ix.get(id) {
            assert_eq!(listed, in_x, "{id:?} differs between X and Z");
        } else {
            assert!(deleted.contains(id), "{id:?} is in Z but not in X");
        }
    }

    // Statuses and tags settle on every copy.
    let originals = lx.acked.iter().map(|v| (v, &xc, &x)).chain(ly.acked.iter().map(|v| (v, &yc, &y)));
    let mut checked = 0;
    for ((key, vid, marker), home, home_bucket) in originals {
        let id = (key.clone(), vid.clone());
        if *marker || deleted.contains(&id) {
            continue;
        }
        let (away, away_bucket) = if home_bucket == &x { (&yc, &y) } else { (&xc, &x) };
        settle(&format!("{key} {vid} to settle"), || async {
            let at_home = replication_status(home, home_bucket, key, vid).await?;
            let away_status = replication_status(away, away_bucket, key, vid).await?;
            if (at_home.as_str(), away_status.as_str()) != ("COMPLETED", "REPLICA") {
                return Err(format!("home {at_home}, away {away_status}"));
            }
            let want = tags(home, home_bucket, key, vid).await?;
            let mut copies = vec![tags(away, away_bucket, key, vid).await?];
            if home_bucket == &x {
                copies.push(tags(&zc, &z, key, vid).await?);
                let in_z = replication_status(&zc, &z, key, vid).await?;
                if in_z != "REPLICA" {
                    return Err(format!("Z reads {in_z}"));
                }
            }
            if copies.iter().any(|c| *c != want) {
                return Err(format!("tags {want:?} at home, {copies:?} elsewhere"));
            }
            Ok(())
        })
        .await;
        checked += 1;
    }
    eprintln!(
        "chaos: {} + {} acknowledged writes, {unknown} unanswered, {} deleted by id, {} in X, {} in Z, {checked} checked",
        lx.acked.len(),
        ly.acked.len(),
        deleted.len(),
        ix.len(),
        iz.len()
    );
}

/// Backing up to another S3 service under chaos: the source (us-east-1) lists the bucket of
/// a separate deployment (eu-central-1, not a peer) as an external target. One client writes
/// the chaos workload (PUTs up to a 2-part upload, delete markers, deletes by id, tag
/// changes) while the source and the target are SIGKILLed and restarted in turn. Then every
/// acknowledged version is on the target exactly once (by its `xregion-source-version-id`),
/// nothing is there twice, each key the deletes by id left alone has the source's current
/// state there, and each copy carries its source version's tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_backup_to_another_s3_service_sends_each_version_once() {
    let backup = TestRegion::start("eu-central-1", &[]);
    let bc = backup.client();
    let target = create_versioned_bucket(&bc, "chaos-backup").await;
    let config = tempfile::tempdir().expect("temp dir");
    let path = config.path().join("region.toml");
    let text = format!(
        "[[targets]]\nbucket = \"{target}\"\nendpoint = \"{}\"\naccess_key = \"{ACCESS_KEY}\"\n\
         secret_key = \"{SECRET_KEY}\"\npath_style = true\n",
        backup.endpoint()
    );
    std::fs::write(&path, text).expect("write config");
    let source = TestRegion::start_with("us-east-1", &[], &["--config", &path.to_string_lossy()]);
    let sc = source.client();
    let src = create_versioned_bucket(&sc, "chaos-src").await;
    put_rules(&sc, &src, vec![rule("backup", 1, &target, false)]).await;

    let known: Known = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write(sc.clone(), src.clone(), "src", known, Arc::clone(&stop)));
    let mut regions = vec![source, backup];
    let rounds = std::env::var("XREGION_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6);
    for round in 0..rounds {
        regions = kill_and_restart(regions, round % 2, 400, 1200).await;
    }
    stop.store(true, Ordering::Relaxed);
    let ledger = writer.await.expect("writer");
    assert!(ledger.acked.len() > 20, "the writer got through: {}", ledger.acked.len());
    let (sc, bc) = (regions[0].client(), regions[1].client());

    // Every acknowledged version still on the source is sent (COMPLETED), tags included.
    let versions: Vec<&(String, String, bool)> = ledger
        .acked
        .iter()
        .filter(|(k, v, marker)| !marker && !ledger.deleted.contains(&(k.clone(), v.clone())))
        .collect();
    for (key, vid, _) in &versions {
        settle(&format!("{key} {vid} COMPLETED"), || async {
            let status = replication_status(&sc, &src, key, vid).await?;
            (status == "COMPLETED").then_some(()).ok_or(status)
        })
        .await;
    }
    // The target's copies by source version: each at most once, every sent one there, with
    // the source's tags.
    let copies = settle("the copies' tags to settle", || async {
        let listed = inventory(&bc, &target).await.ok_or("listing the target failed")?;
        let mut copies: BTreeMap<String, (String, String)> = BTreeMap::new();
        for ((key, id), entry) in &listed {
            if entry.marker {
                continue;
            }
            let head = bc.head_object().bucket(&target).key(key).version_id(id).send().await;
            let head = head.map_err(|e| format!("head {key} {id}: {:?}", DebugSdkError(&e)))?;
            let source = head.metadata().and_then(|m| m.get("xregion-source-version-id")).cloned();
            let source = source.ok_or(format!("{key} {id} names no source version"))?;
            if let Some(twice) = copies.insert(source.clone(), (key.clone(), id.clone())) {
                panic!("source version {source} is on the target twice: {twice:?} and {id}");
            }
        }
        for (key, vid, _) in &versions {
            let (_, copy) = copies.get(vid).ok_or(format!("{key} {vid} is not on the target"))?;
            let (want, got) = (tags(&sc, &src, key, vid).await?, tags(&bc, &target, key, copy).await?);
            if want != got {
                return Err(format!("{key} {vid}: tags {want:?} on the source, {got:?} on its copy"));
            }
        }
        Ok(copies)
    })
    .await;
    // Each key that no delete by id touched ends as on the source: the same current version,
    // or a delete marker.
    let touched: BTreeSet<&str> = ledger.deleted.iter().map(|(k, _)| k.as_str()).collect();
    for key in (0..10).map(|i| format!("k{i}")).filter(|k| !touched.contains(k.as_str())) {
        let current = |client: Client, bucket: String| {
            let key = key.clone();
            async move {
                match client.head_object().bucket(&bucket).key(&key).send().await {
                    Ok(head) => Some((head.version_id().map(str::to_owned), head.metadata().cloned())),
                    Err(_) => None,
                }
            }
        };
        let on_source = current(sc.clone(), src.clone()).await.map(|(id, _)| id.unwrap_or_default());
        let on_target = current(bc.clone(), target.clone())
            .await
            .map(|(_, m)| m.and_then(|m| m.get("xregion-source-version-id").cloned()).unwrap_or_default());
        assert_eq!(on_source, on_target, "{key}: current version on the source, and the one its copy holds");
    }
    assert!(copies.len() >= versions.len());
    eprintln!(
        "chaos backup: {} acknowledged writes ({} versions kept), {} copies on the target, {} writes unanswered",
        ledger.acked.len(),
        versions.len(),
        copies.len(),
        ledger.unknown
    );
}
