//! Replication rules end to end (spec §4 ELI, §6 STS, §7 PRI, §8 TWO): configurations sent with
//! the SDK's PutBucketReplication, writes through the SDK, and what reaches which region.
//! "Not replicated" is proved without sleeping: a version outside replication has no
//! `x-amz-replication-status` (its tasks would commit with it, IMPL-1), and a later version
//! that is replicated acts as a barrier before the destination's listing is compared.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, MetadataDirective,
    ReplicaModifications, ReplicaModificationsStatus, ReplicationRule, ReplicationRuleAndOperator,
    ReplicationRuleFilter, ReplicationRuleStatus, SourceSelectionCriteria, StorageClass, Tag, Tagging,
};

use crate::common::*;
use crate::replication::{configure, eventually, pair, put_rules, status, wait_completed, wait_same_versions};

/// A V2 rule (delete-marker replication off) to `dst`, optionally with a storage class.
fn rule(
    id: &str,
    priority: i32,
    filter: ReplicationRuleFilter,
    dst: &str,
    class: Option<StorageClass>,
) -> ReplicationRule {
    ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .status(ReplicationRuleStatus::Enabled)
        .filter(filter)
        .delete_marker_replication(
            DeleteMarkerReplication::builder().status(DeleteMarkerReplicationStatus::Disabled).build(),
        )
        .destination(
            Destination::builder()
                .bucket(format!("arn:aws:s3:::{dst}"))
                .set_storage_class(class)
                .build()
                .expect("destination"),
        )
        .build()
        .expect("rule")
}

fn prefix(p: &str) -> ReplicationRuleFilter {
    ReplicationRuleFilter::builder().prefix(p).build()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().expect("tag")
}

/// PutObject with a tag set (`k=v&…`); returns the version id.
async fn put_tagged(client: &Client, bucket: &str, key: &str, tagging: &str) -> String {
    let mut req = client.put_object().bucket(bucket).key(key).body(ByteStream::from(key.as_bytes().to_vec()));
    if !tagging.is_empty() {
        req = req.tagging(tagging);
    }
    let out = req.send().await.unwrap_or_else(|e| panic!("put {key:?}: {:?}", DebugSdkError(&e)));
    out.version_id().expect("version id").to_owned()
}

/// The replication status header of a version that must exist (None = outside replication).
async fn header(client: &Client, bucket: &str, key: &str, version: &str) -> Option<String> {
    let out = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key} {version}: {:?}", DebugSdkError(&e)));
    out.replication_status().map(|s| s.as_str().to_owned())
}

/// (key, version id) of every version in a bucket, in listing order.
async fn ids(client: &Client, bucket: &str) -> Vec<(String, String)> {
    all_versions(client, bucket).await.into_iter().map(|v| (v.0, v.1)).collect()
}

/// Asserts the versions `selected` replicate (COMPLETED, the replica is there) and the versions
/// `skipped` carry no status and never reach the destination.
async fn assert_selection(
    (sc, src): (&Client, &str),
    (dc, dst): (&Client, &str),
    selected: &[(&str, &str)],
    skipped: &[(&str, &str)],
) {
    for (key, vid) in skipped {
        assert_eq!(header(sc, src, key, vid).await, None, "{key} must not be selected");
    }
    for (key, vid) in selected {
        wait_completed(sc, src, key, vid).await;
    }
    let mut want: Vec<(String, String)> = selected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    want.sort();
    let mut got = ids(dc, dst).await;
    got.sort();
    assert_eq!(got, want, "destination holds exactly the selected versions");
}

/// ELI-4 (Prefix): a prefix rule replicates the keys that start with it, byte-wise, and nothing
/// else.
#[tokio::test]
async fn eli4_prefix_rule_replicates_matching_keys_only() {
    let (_regions, sc, dc, src, dst) = pair("prefix", false).await;
    put_rules(&sc, &src, vec![rule("docs", 1, prefix("docs/"), &dst, None)]).await;
    let no1 = put_tagged(&sc, &src, "img/a.png", "").await;
    let no2 = put_tagged(&sc, &src, "Docs/upper", "").await;
    let no3 = put_tagged(&sc, &src, "docs", "").await;
    let yes1 = put_tagged(&sc, &src, "docs/a.txt", "").await;
    let yes2 = put_tagged(&sc, &src, "docs/sub/b.txt", "").await;
    assert_selection(
        (&sc, &src),
        (&dc, &dst),
        &[("docs/a.txt", &yes1), ("docs/sub/b.txt", &yes2)],
        &[("img/a.png", &no1), ("Docs/upper", &no2), ("docs", &no3)],
    )
    .await;
}

/// ELI-4 (Tag), ELI-5: a tag rule replicates versions written with that exact tag; a later
/// PutObjectTagging does not make an existing version eligible.
#[tokio::test]
async fn eli4_eli5_tag_rule_uses_the_tags_sent_with_the_write() {
    let (_regions, sc, dc, src, dst) = pair("tagrule", false).await;
    let filter = ReplicationRuleFilter::builder().tag(tag("team", "storage")).build();
    put_rules(&sc, &src, vec![rule("team", 1, filter, &dst, None)]).await;
    let yes = put_tagged(&sc, &src, "a", "team=storage&x=y").await;
    let wrong_value = put_tagged(&sc, &src, "b", "team=compute").await;
    let untagged = put_tagged(&sc, &src, "c", "").await;
    // ELI-5: tagging "c" afterwards does not make it eligible.
    let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag("team", "storage")).build().expect("tagging");
    sc.put_object_tagging().bucket(&src).key("c").tagging(tagging).send().await.expect("tag c");
    assert_selection((&sc, &src), (&dc, &dst), &[("a", &yes)], &[("b", &wrong_value), ("c", &untagged)]).await;
}

/// ELI-12 with ELI-5: a tag change reaches the replica that was made when the version was
/// written, also once the new tags no longer match the rule's tag filter (eligibility is
/// judged at creation), and again on a second change; a version whose tags never selected a
/// destination sends it nothing.
#[tokio::test]
async fn eli12_tag_changes_reach_the_replica_even_when_the_filter_no_longer_matches() {
    let (_regions, sc, dc, src, dst) = pair("tagmove", false).await;
    let filter = ReplicationRuleFilter::builder().tag(tag("team", "storage")).build();
    put_rules(&sc, &src, vec![rule("team", 1, filter, &dst, None)]).await;
    let vid = put_tagged(&sc, &src, "a", "team=storage").await;
    wait_completed(&sc, &src, "a", &vid).await;
    for value in ["compute", "network"] {
        let tagging = Tagging::builder().tag_set(tag("team", value)).build().expect("tagging");
        let req = sc.put_object_tagging().bucket(&src).key("a").version_id(&vid).tagging(tagging);
        req.send().await.unwrap_or_else(|e| panic!("tag a: {:?}", DebugSdkError(&e)));
        let want = vec![("team".to_owned(), value.to_owned())];
        eventually("replica tags", || async { (tags_of(&dc, &dst, "a", &vid).await == want).then_some(()) }).await;
        wait_completed(&sc, &src, "a", &vid).await;
    }
    // Never selected (ELI-5): tagging it to match afterwards sends nothing anywhere.
    let other = put_tagged(&sc, &src, "b", "team=compute").await;
    let tagging = Tagging::builder().tag_set(tag("team", "storage")).build().expect("tagging");
    sc.put_object_tagging().bucket(&src).key("b").tagging(tagging).send().await.expect("tag b");
    assert_eq!(header(&sc, &src, "b", &other).await, None);
    assert_eq!(ids(&dc, &dst).await, vec![("a".to_owned(), vid.clone())]);
}

/// ELI-4 (And): the prefix and every listed tag must hold.
#[tokio::test]
async fn eli4_and_rule_needs_the_prefix_and_every_tag() {
    let (_regions, sc, dc, src, dst) = pair("andrule", false).await;
    let and = ReplicationRuleAndOperator::builder().prefix("logs/").tags(tag("a", "1")).tags(tag("b", "2")).build();
    put_rules(&sc, &src, vec![rule("and", 1, ReplicationRuleFilter::builder().and(and).build(), &dst, None)]).await;
    let yes = put_tagged(&sc, &src, "logs/x", "a=1&b=2&c=3").await;
    let one_tag = put_tagged(&sc, &src, "logs/y", "a=1").await;
    let other_prefix = put_tagged(&sc, &src, "other/z", "a=1&b=2").await;
    let wrong_value = put_tagged(&sc, &src, "logs/w", "a=1&b=3").await;
    assert_selection(
        (&sc, &src),
        (&dc, &dst),
        &[("logs/x", &yes)],
        &[("logs/y", &one_tag), ("other/z", &other_prefix), ("logs/w", &wrong_value)],
    )
    .await;
}

/// ELI-3: versions written while the only rule is Disabled get no status header and are not
/// replicated, not even once the rule is enabled again (then only new versions are).
#[tokio::test]
async fn eli3_disabled_rule_replicates_nothing() {
    let (_regions, sc, dc, src, dst) = pair("disabled", false).await;
    let mut disabled = rule("paused", 1, prefix(""), &dst, None);
    disabled.status = ReplicationRuleStatus::Disabled;
    put_rules(&sc, &src, vec![disabled]).await;
    let while_paused = put_tagged(&sc, &src, "k", "").await;
    let other = put_tagged(&sc, &src, "other", "").await;
    assert_eq!(header(&sc, &src, "k", &while_paused).await, None);
    assert_eq!(header(&sc, &src, "other", &other).await, None);
    // Re-enabled: the new version is replicated, the paused ones never are.
    put_rules(&sc, &src, vec![rule("paused", 1, prefix(""), &dst, None)]).await;
    let after = put_tagged(&sc, &src, "k", "").await;
    assert_selection((&sc, &src), (&dc, &dst), &[("k", &after)], &[("k", &while_paused), ("other", &other)]).await;
}

/// ELI-1: versions that existed before the configuration are never back-filled; a new version
/// of the same key is replicated, the old one is not.
#[tokio::test]
async fn eli1_versions_before_the_configuration_are_not_replicated() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (sc, dc) = (regions[0].client(), regions[1].client());
    let src = create_versioned_bucket(&sc, "before-src").await;
    let dst = create_versioned_bucket(&dc, "before-dst").await;
    let old1 = put_tagged(&sc, &src, "k", "").await;
    let old2 = put_tagged(&sc, &src, "untouched", "").await;
    put_rules(&sc, &src, vec![rule("all", 1, prefix(""), &dst, None)]).await;
    let new = put_tagged(&sc, &src, "k", "").await;
    assert_selection((&sc, &src), (&dc, &dst), &[("k", &new)], &[("k", &old1), ("untouched", &old2)]).await;
    // The replica is the destination's current (and only) version of "k".
    assert_eq!(get_body(&dc, &dst, "k", None).await, b"k");
}

/// ELI-10, ELI-6: system metadata, user metadata and tags travel with the version, for a
/// PutObject and for a CopyObject that replaces the metadata.
#[tokio::test]
async fn eli10_metadata_content_type_and_tags_round_trip() {
    let (_regions, sc, dc, src, dst) = pair("meta", false).await;
    let put = sc
        .put_object()
        .bucket(&src)
        .key("report.json.gz")
        .body(ByteStream::from(b"{\"a\":1}".to_vec()))
        .content_type("application/json")
        .content_encoding("gzip")
        .content_disposition("attachment; filename=\"report.json.gz\"")
        .content_language("de-CH")
        .cache_control("no-cache")
        .metadata("owner", "alice")
        .metadata("build", "1234")
        .tagging("project=xregion&stage=prod")
        .send()
        .await
        .expect("put");
    let v1 = put.version_id().expect("vid").to_owned();
    let copy = sc
        .copy_object()
        .bucket(&src)
        .key("copy.txt")
        .copy_source(format!("{src}/report.json.gz?versionId={v1}"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain; charset=utf-8")
        .metadata("copied", "yes")
        .send()
        .await
        .expect("copy");
    let v2 = copy.version_id().expect("vid").to_owned();
    wait_completed(&sc, &src, "report.json.gz", &v1).await;
    wait_completed(&sc, &src, "copy.txt", &v2).await;

    for (key, vid) in [("report.json.gz", &v1), ("copy.txt", &v2)] {
        let s = sc.head_object().bucket(&src).key(key).version_id(vid).send().await.expect("head src");
        let d = dc.head_object().bucket(&dst).key(key).version_id(vid).send().await.expect("head replica");
        assert_eq!(d.replication_status().map(|s| s.as_str()), Some("REPLICA"), "{key}");
        assert_eq!(
            (d.content_type(), d.content_encoding(), d.content_disposition(), d.content_language()),
            (s.content_type(), s.content_encoding(), s.content_disposition(), s.content_language()),
            "{key}"
        );
        assert_eq!(d.cache_control(), s.cache_control(), "{key}");
        assert_eq!(d.metadata(), s.metadata(), "{key}");
        assert_eq!((d.e_tag(), d.content_length()), (s.e_tag(), s.content_length()), "{key}");
        let tags = |c: &Client, b: &str| {
            let (c, b) = (c.clone(), b.to_owned());
            async move {
                let out = c.get_object_tagging().bucket(b).key(key).version_id(vid).send().await.expect("tags");
                let mut t: Vec<(String, String)> =
                    out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
                t.sort();
                t
            }
        };
        assert_eq!(tags(&dc, &dst).await, tags(&sc, &src).await, "{key}");
    }
    let d = dc.head_object().bucket(&dst).key("report.json.gz").version_id(&v1).send().await.expect("head");
    assert_eq!(d.content_type(), Some("application/json"));
    assert_eq!(d.metadata().and_then(|m| m.get("owner")).map(String::as_str), Some("alice"));
    let d = dc.head_object().bucket(&dst).key("copy.txt").version_id(&v2).send().await.expect("head");
    assert_eq!(d.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(d.metadata().and_then(|m| m.get("copied")).map(String::as_str), Some("yes"));
    assert_eq!(get_body(&dc, &dst, "copy.txt", Some(&v2)).await, b"{\"a\":1}");
}

/// TWO-1, TWO-2: A→B and B→A. Writes on both sides (also to the same key) end with the same
/// version list in both regions, each version once; originals read COMPLETED where they were
/// written and REPLICA on the other side, and stay so (nothing ping-pongs).
#[tokio::test]
async fn two1_two2_two_way_replication_without_loops() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (ac, bc) = (regions[0].client(), regions[1].client());
    let a = create_versioned_bucket(&ac, "two-a").await;
    let b = create_versioned_bucket(&bc, "two-b").await;
    put_rules(&ac, &a, vec![rule("to-b", 1, prefix(""), &b, None)]).await;
    put_rules(&bc, &b, vec![rule("to-a", 1, prefix(""), &a, None)]).await;
    let mut written: Vec<(bool, String, String)> = Vec::new();
    for i in 0..3 {
        written.push((true, "shared".into(), put_tagged(&ac, &a, "shared", "").await));
        written.push((false, "shared".into(), put_tagged(&bc, &b, "shared", "").await));
        written.push((true, format!("a{i}"), put_tagged(&ac, &a, &format!("a{i}"), "").await));
        written.push((false, format!("b{i}"), put_tagged(&bc, &b, &format!("b{i}"), "").await));
    }
    for (in_a, key, vid) in &written {
        let (c, bucket) = if *in_a { (&ac, &a) } else { (&bc, &b) };
        wait_completed(c, bucket, key, vid).await;
    }
    let versions_b = wait_same_versions(&ac, &a, &bc, &b).await;
    assert_eq!(versions_b.len(), written.len(), "each version exactly once: {versions_b:?}");
    let mut listed: Vec<&str> = versions_b.iter().map(|v| v.1.as_str()).collect();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), written.len());
    for (in_a, key, vid) in &written {
        let (home, away) = if *in_a { ((&ac, &a), (&bc, &b)) } else { ((&bc, &b), (&ac, &a)) };
        assert_eq!(header(home.0, home.1, key, vid).await.as_deref(), Some("COMPLETED"), "{key} {vid} at home");
        assert_eq!(header(away.0, away.1, key, vid).await.as_deref(), Some("REPLICA"), "{key} {vid} away");
    }
    // Both sides agree on the current version of the shared key (the newest write).
    let newest_shared = written.iter().rfind(|w| w.1 == "shared").map(|w| w.2.clone());
    for (c, bucket) in [(&ac, &a), (&bc, &b)] {
        let head = c.head_object().bucket(bucket).key("shared").send().await.expect("head shared");
        assert_eq!(head.version_id().map(str::to_owned), newest_shared);
    }
}

/// CON-3 under concurrency: with A→B and B→A, clients on both sides write the same few keys at
/// full speed. Each region observes the other's stamps, so their clocks run in step; a version
/// written on each side in the same microsecond must still get distinct stamps (each region
/// has its own stamp tag), or the replica of one collides with the other on arrival and is
/// refused for good. Afterwards both sides hold the same versions, markers and current
/// versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn con3_concurrent_writes_on_both_sides_of_two_way_replication_converge() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (ac, bc) = (regions[0].client(), regions[1].client());
    let a = create_versioned_bucket(&ac, "busy-a").await;
    let b = create_versioned_bucket(&bc, "busy-b").await;
    // Whole bucket, delete markers too, both ways.
    configure(&ac, &a, &b, true).await;
    configure(&bc, &b, &a, true).await;
    let mut writers = Vec::new();
    for (client, bucket) in [(&ac, &a), (&bc, &b)] {
        for w in 0..4 {
            let (client, bucket) = (client.clone(), bucket.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..120 {
                    let key = format!("k{}", (i + w) % 3);
                    if i % 10 == 9 {
                        client.delete_object().bucket(&bucket).key(&key).send().await.expect("delete");
                    } else {
                        put(&client, &bucket, &key, format!("{bucket} {w} {i}").as_bytes()).await;
                    }
                }
            }));
        }
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    // Both sides still receive the other's replicas: wait until each holds every write, then
    // compare them.
    let written = 2 * 4 * 120;
    let (va, vb) = eventually("every write on both sides", || async {
        let (va, vb) = (all_versions(&ac, &a).await, all_versions(&bc, &b).await);
        (va.len() >= written && vb.len() >= written).then_some((va, vb))
    })
    .await;
    assert_eq!(va.len(), written, "every write once");
    assert_eq!(va, vb, "the same versions, markers and current versions on both sides");
}

/// Tags of a version as (key, value) pairs.
async fn tags_of(client: &Client, bucket: &str, key: &str, version: &str) -> Vec<(String, String)> {
    let out = client.get_object_tagging().bucket(bucket).key(key).version_id(version).send().await;
    let out = out.unwrap_or_else(|e| panic!("get tagging {key} {version}: {:?}", DebugSdkError(&e)));
    out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

async fn set_tag(client: &Client, bucket: &str, key: &str, version: &str, value: &str) {
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("state").value(value).build().expect("tag"))
        .build()
        .expect("tags");
    let req = client.put_object_tagging().bucket(bucket).key(key).version_id(version).tagging(tagging);
    req.send().await.unwrap_or_else(|e| panic!("tag {key} {version}: {:?}", DebugSdkError(&e)));
}

/// TWO-3, TWO-4, TWO-6, STS-10: two-way replication where only B's rule enables
/// ReplicaModifications. A tag change on B's replica flows back to the original in A and the
/// replica reads REPLICA again; it does not bounce back to B, and no version is created. A tag
/// change on A's replica of a B original stays in A (A's rule has no ReplicaModifications).
#[tokio::test]
async fn two4_replica_modifications_sync_tags_back_to_the_origin() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1"]);
    let (ac, bc) = (regions[0].client(), regions[1].client());
    let a = create_versioned_bucket(&ac, "rm-a").await;
    let b = create_versioned_bucket(&bc, "rm-b").await;
    put_rules(&ac, &a, vec![rule("to-b", 1, prefix(""), &b, None)]).await;
    let rm = ReplicaModifications::builder().status(ReplicaModificationsStatus::Enabled).build().expect("rm");
    let mut back = rule("to-a", 1, prefix(""), &a, None);
    back.source_selection_criteria = Some(SourceSelectionCriteria::builder().replica_modifications(rm).build());
    put_rules(&bc, &b, vec![back]).await;

    let from_a = put_tagged(&ac, &a, "from-a", "state=new").await;
    let from_b = put_tagged(&bc, &b, "from-b", "state=new").await;
    wait_completed(&ac, &a, "from-a", &from_a).await;
    wait_completed(&bc, &b, "from-b", &from_b).await;

    // TWO-4: B's replica of an A original is tagged; the change reaches A.
    set_tag(&bc, &b, "from-a", &from_a, "edited-in-b").await;
    let want = vec![("state".to_owned(), "edited-in-b".to_owned())];
    eventually("tag change synced back to A", || async {
        (tags_of(&ac, &a, "from-a", &from_a).await == want).then_some(())
    })
    .await;
    // STS-10: the replica reads REPLICA again once the change is applied; the original keeps
    // COMPLETED.
    eventually("replica back to REPLICA", || async {
        (header(&bc, &b, "from-a", &from_a).await.as_deref() == Some("REPLICA")).then_some(())
    })
    .await;
    assert_eq!(header(&ac, &a, "from-a", &from_a).await.as_deref(), Some("COMPLETED"));

    // TWO-3: A's rule has no ReplicaModifications, so tagging A's replica of a B original
    // queues nothing (the replica stays REPLICA at once, IMPL-1) and B keeps its tags.
    set_tag(&ac, &a, "from-b", &from_b, "edited-in-a").await;
    assert_eq!(header(&ac, &a, "from-b", &from_b).await.as_deref(), Some("REPLICA"));

    // A barrier: a new original in A replicates after everything queued before it.
    let barrier = put_tagged(&ac, &a, "barrier", "").await;
    wait_completed(&ac, &a, "barrier", &barrier).await;
    // TWO-6: the change that arrived in A was not sent back to B (B still has its own edit),
    // and nothing created a version: each key has exactly one version on each side.
    assert_eq!(tags_of(&bc, &b, "from-a", &from_a).await, want);
    assert_eq!(tags_of(&bc, &b, "from-b", &from_b).await, vec![("state".to_owned(), "new".to_owned())]);
    let versions_b = wait_same_versions(&ac, &a, &bc, &b).await;
    assert_eq!(versions_b.len(), 3, "one version per key: {versions_b:?}");
}

/// TWO-4, TWO-6: A replicates to B and C; B syncs replica modifications back to A. A tag
/// change on B's replica reaches A and, from there, A's other replica in C, but is not sent
/// back to B; every copy ends with the change, and A reads COMPLETED once C has it.
#[tokio::test]
async fn two4_a_change_synced_back_reaches_the_originals_other_replicas() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (ac, bc, cc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let a = create_versioned_bucket(&ac, "fan-a").await;
    let b = create_versioned_bucket(&bc, "fan-b").await;
    let c = create_versioned_bucket(&cc, "fan-c").await;
    put_rules(&ac, &a, vec![rule("to-b", 1, prefix(""), &b, None), rule("to-c", 2, prefix(""), &c, None)]).await;
    let rm = ReplicaModifications::builder().status(ReplicaModificationsStatus::Enabled).build().expect("rm");
    let mut back = rule("to-a", 1, prefix(""), &a, None);
    back.source_selection_criteria = Some(SourceSelectionCriteria::builder().replica_modifications(rm).build());
    put_rules(&bc, &b, vec![back]).await;

    let vid = put_tagged(&ac, &a, "k", "state=new").await;
    wait_completed(&ac, &a, "k", &vid).await;
    set_tag(&bc, &b, "k", &vid, "edited-in-b").await;
    let want = vec![("state".to_owned(), "edited-in-b".to_owned())];
    for (client, bucket) in [(&ac, &a), (&cc, &c)] {
        eventually("the change reaches A and C", || async {
            (tags_of(client, bucket, "k", &vid).await == want).then_some(())
        })
        .await;
    }
    wait_completed(&ac, &a, "k", &vid).await;
    eventually("B's replica back to REPLICA", || async {
        (header(&bc, &b, "k", &vid).await.as_deref() == Some("REPLICA")).then_some(())
    })
    .await;
    assert_eq!(tags_of(&bc, &b, "k", &vid).await, want);
    assert_eq!(header(&cc, &c, "k", &vid).await.as_deref(), Some("REPLICA"));
}

/// ELI-13: a chain A→B→C stops at B. Replicas that arrive in B are not sent on to C; B's own
/// originals are.
#[tokio::test]
async fn eli13_chain_a_to_b_to_c_stops_at_b() {
    let regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (ac, bc, cc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let a = create_versioned_bucket(&ac, "chain-a").await;
    let b = create_versioned_bucket(&bc, "chain-b").await;
    let c = create_versioned_bucket(&cc, "chain-c").await;
    put_rules(&ac, &a, vec![rule("a-to-b", 1, prefix(""), &b, None)]).await;
    put_rules(&bc, &b, vec![rule("b-to-c", 1, prefix(""), &c, None)]).await;
    let from_a = put_tagged(&ac, &a, "from-a", "").await;
    wait_completed(&ac, &a, "from-a", &from_a).await;
    assert_eq!(header(&bc, &b, "from-a", &from_a).await.as_deref(), Some("REPLICA"));
    // Written to B after the replica arrived: once it reached C, B's worker is past the replica.
    let from_b = put_tagged(&bc, &b, "from-b", "").await;
    wait_completed(&bc, &b, "from-b", &from_b).await;
    assert_eq!(ids(&cc, &c).await, [("from-b".to_owned(), from_b.clone())]);
    assert_eq!(header(&cc, &c, "from-b", &from_b).await.as_deref(), Some("REPLICA"));
}

/// PRI-1 step 5, PRI-5, STS-7: two rules to two destinations in two other regions. The source
/// reads PENDING while one destination is down (the other already has the replica), COMPLETED
/// when both have it, and FAILED when one destination's versioning is suspended, even though
/// the other destination succeeded.
#[tokio::test]
async fn sts7_multiple_destinations_aggregate_status() {
    let mut regions = TestRegion::start_many(&["us-east-1", "eu-west-1", "ap-south-1"]);
    let (sc, bc, cc) = (regions[0].client(), regions[1].client(), regions[2].client());
    let src = create_versioned_bucket(&sc, "multi-src").await;
    let d1 = create_versioned_bucket(&bc, "multi-d1").await;
    let d2 = create_versioned_bucket(&cc, "multi-d2").await;
    put_rules(&sc, &src, vec![rule("to-d1", 1, prefix(""), &d1, None), rule("to-d2", 2, prefix(""), &d2, None)]).await;

    regions[2].kill();
    let v1 = put_tagged(&sc, &src, "k", "").await;
    // d1 gets it while d2's region is down (its lookup is transient, never blocks d1).
    eventually("replica in d1", || async {
        bc.head_object().bucket(&d1).key("k").version_id(&v1).send().await.ok().map(|_| ())
    })
    .await;
    assert_eq!(header(&sc, &src, "k", &v1).await.as_deref(), Some("PENDING"), "one destination outstanding");
    regions[2].restart();
    let cc = regions[2].client();
    wait_completed(&sc, &src, "k", &v1).await;
    for (c, d) in [(&bc, &d1), (&cc, &d2)] {
        assert_eq!(header(c, d, "k", &v1).await.as_deref(), Some("REPLICA"));
    }

    // STS-7: one destination refuses (DstBucketUnversioned) → FAILED although d1 succeeded.
    set_versioning(&cc, &d2, BucketVersioningStatus::Suspended).await;
    let v2 = put_tagged(&sc, &src, "k2", "").await;
    eventually("k2 FAILED", || async {
        (status(&sc, &src, "k2", &v2).await.as_deref() == Some("FAILED")).then_some(())
    })
    .await;
    eventually("k2 replica in d1", || async {
        bc.head_object().bucket(&d1).key("k2").version_id(&v2).send().await.ok().map(|_| ())
    })
    .await;
    assert_eq!(header(&sc, &src, "k2", &v2).await.as_deref(), Some("FAILED"), "FAILED wins over COMPLETED");
    expect_error(cc.head_object().bucket(&d2).key("k2").send().await, 404, None);
}

/// PRI-1 step 4, PRI-3: overlapping prefixes to the same destination are resolved by the
/// highest priority (its storage class is the replica's); another destination is served by
/// its own rules whatever their priority (PRI-1 step 5). Same-region replication, one region.
#[tokio::test]
async fn pri3_priority_resolves_overlaps_per_destination() {
    let regions = TestRegion::start_many(&["us-east-1"]);
    let c = regions[0].client();
    let src = create_versioned_bucket(&c, "pri-src").await;
    let d1 = create_versioned_bucket(&c, "pri-d1").await;
    let d2 = create_versioned_bucket(&c, "pri-d2").await;
    put_rules(
        &c,
        &src,
        vec![
            rule("star", 1, prefix("star"), &d1, Some(StorageClass::StandardIa)),
            rule("starship", 2, prefix("starship"), &d1, Some(StorageClass::OnezoneIa)),
            // Lowest priority, different destination: still applies (no competition across groups).
            rule("star-d2", 0, prefix("star"), &d2, Some(StorageClass::GlacierIr)),
        ],
    )
    .await;
    let ship = put_tagged(&c, &src, "starship-x", "").await;
    let star = put_tagged(&c, &src, "star-y", "").await;
    let other = put_tagged(&c, &src, "moon", "").await;
    wait_completed(&c, &src, "starship-x", &ship).await;
    wait_completed(&c, &src, "star-y", &star).await;
    assert_eq!(header(&c, &src, "moon", &other).await, None);
    let class = |bucket: String, key: &'static str, vid: String| {
        let c = c.clone();
        async move {
            let out = c.head_object().bucket(bucket).key(key).version_id(vid).send().await.expect("head replica");
            out.storage_class().map(|s| s.as_str().to_owned())
        }
    };
    assert_eq!(class(d1.clone(), "starship-x", ship.clone()).await.as_deref(), Some("ONEZONE_IA"), "priority 2 wins");
    assert_eq!(class(d1.clone(), "star-y", star.clone()).await.as_deref(), Some("STANDARD_IA"));
    assert_eq!(class(d2.clone(), "starship-x", ship.clone()).await.as_deref(), Some("GLACIER_IR"));
    assert_eq!(class(d2.clone(), "star-y", star.clone()).await.as_deref(), Some("GLACIER_IR"));
    // Each destination got each selected version once.
    for d in [&d1, &d2] {
        let mut got = ids(&c, d).await;
        got.sort();
        assert_eq!(got, [("star-y".to_owned(), star.clone()), ("starship-x".to_owned(), ship.clone())]);
    }
}
