//! Listing: ListObjectsV2 and V1 (prefix, delimiter, common prefixes, start-after,
//! continuation tokens, max-keys, encoding-type=url), and a model-based property test of
//! ListObjectsV2 / ListObjectVersions pagination (VER-19, VER-20).

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::*;

const TREE: [&str; 9] = [
    "a.txt",
    "photos/2024/jan.jpg",
    "photos/2024/feb.jpg",
    "photos/2025/mar.jpg",
    "photos/index",
    "z",
    "zz/top",
    "é/1",
    "é/2",
];

async fn tree_bucket(s3: &Client) -> String {
    let bucket = create_bucket(s3, "tree").await;
    for key in TREE {
        put(s3, &bucket, key, key.as_bytes()).await;
    }
    bucket
}

fn keys_of(out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Vec<&str> {
    out.contents().iter().filter_map(|o| o.key()).collect()
}

fn prefixes_of(out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Vec<&str> {
    out.common_prefixes().iter().filter_map(|p| p.prefix()).collect()
}

#[tokio::test]
async fn list_objects_v2_prefix_delimiter_start_after_and_continuation() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = tree_bucket(&s3).await;
    let mut all: Vec<&str> = TREE.to_vec();
    all.sort_unstable();

    let out = s3.list_objects_v2().bucket(&bucket).send().await.expect("list");
    assert_eq!(keys_of(&out), all);
    assert_eq!(out.key_count(), Some(9));
    assert_eq!(out.max_keys(), Some(1000));
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(out.name(), Some(bucket.as_str()));
    let first = &out.contents()[0];
    assert_eq!(first.size(), Some(5));
    assert_eq!(first.e_tag().map(unquote), Some(md5_hex(b"a.txt").as_str()));
    assert!(first.last_modified().is_some());
    assert!(first.owner().is_none(), "V2 omits Owner unless fetch-owner");
    let out = s3.list_objects_v2().bucket(&bucket).fetch_owner(true).send().await.expect("list");
    assert!(out.contents()[0].owner().is_some());

    // Delimiter at the top.
    let out = s3.list_objects_v2().bucket(&bucket).delimiter("/").send().await.expect("list");
    assert_eq!(keys_of(&out), vec!["a.txt", "z"]);
    assert_eq!(prefixes_of(&out), vec!["photos/", "zz/", "é/"]);
    assert_eq!(out.key_count(), Some(5));
    assert_eq!(out.delimiter(), Some("/"));

    // Prefix + delimiter one level down.
    let out = s3.list_objects_v2().bucket(&bucket).prefix("photos/").delimiter("/").send().await.expect("list");
    assert_eq!(keys_of(&out), vec!["photos/index"]);
    assert_eq!(prefixes_of(&out), vec!["photos/2024/", "photos/2025/"]);
    assert_eq!(out.prefix(), Some("photos/"));
    // A prefix that is not a directory boundary, and a multi-character delimiter.
    let out = s3.list_objects_v2().bucket(&bucket).prefix("photos/202").delimiter("/").send().await.expect("list");
    assert_eq!(prefixes_of(&out), vec!["photos/2024/", "photos/2025/"]);
    let out = s3.list_objects_v2().bucket(&bucket).delimiter("/20").send().await.expect("list");
    assert_eq!(prefixes_of(&out), vec!["photos/20"]);
    assert_eq!(keys_of(&out), vec!["a.txt", "photos/index", "z", "zz/top", "é/1", "é/2"]);
    let out = s3.list_objects_v2().bucket(&bucket).prefix("nothing").send().await.expect("list");
    assert_eq!((out.key_count(), out.is_truncated()), (Some(0), Some(false)));

    // start-after.
    let out = s3.list_objects_v2().bucket(&bucket).start_after("photos/2025/mar.jpg").send().await.expect("list");
    assert_eq!(keys_of(&out), vec!["photos/index", "z", "zz/top", "é/1", "é/2"]);
    assert_eq!(out.start_after(), Some("photos/2025/mar.jpg"));
    let out = s3.list_objects_v2().bucket(&bucket).start_after("zzz").send().await.expect("list");
    assert_eq!(keys_of(&out), vec!["é/1", "é/2"]);

    // Continuation tokens with max-keys 2, with and without a delimiter.
    for delimiter in [None, Some("/")] {
        let mut got: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(&bucket)
                .max_keys(2)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_continuation_token(token.clone())
                .send()
                .await
                .expect("page");
            pages += 1;
            assert_eq!(out.continuation_token(), token.as_deref());
            assert!(out.key_count().unwrap() <= 2);
            let mut items: Vec<String> =
                keys_of(&out).into_iter().chain(prefixes_of(&out)).map(str::to_owned).collect();
            items.sort_unstable();
            got.extend(items);
            if out.is_truncated() != Some(true) {
                assert_eq!(out.next_continuation_token(), None);
                break;
            }
            token = Some(out.next_continuation_token().expect("token when truncated").to_owned());
            assert!(pages < 20, "pagination does not end");
        }
        let expected: Vec<&str> = match delimiter {
            None => all.clone(),
            Some(_) => vec!["a.txt", "photos/", "z", "zz/", "é/"],
        };
        assert_eq!(got, expected, "delimiter {delimiter:?}");
        assert_eq!(pages, expected.len().div_ceil(2), "delimiter {delimiter:?}");
    }

    // max-keys 0: an empty page.
    let out = s3.list_objects_v2().bucket(&bucket).max_keys(0).send().await.expect("list");
    assert_eq!(out.key_count(), Some(0));

    // A forged continuation token is refused.
    let res = s3.list_objects_v2().bucket(&bucket).continuation_token("!!not a token!!").send().await;
    expect_error(res, 400, Some("InvalidArgument"));
    expect_error(s3.list_objects_v2().bucket("no-such-bucket-xr").send().await, 404, Some("NoSuchBucket"));
}

#[tokio::test]
async fn list_objects_v1_marker_and_next_marker() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = tree_bucket(&s3).await;
    let mut all: Vec<&str> = TREE.to_vec();
    all.sort_unstable();

    let out = s3.list_objects().bucket(&bucket).send().await.expect("list");
    assert_eq!(out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), all);
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(out.marker(), Some(""));

    // Without a delimiter, a client continues from the last key it saw.
    let mut got: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..20 {
        let out = s3.list_objects().bucket(&bucket).max_keys(4).set_marker(marker.clone()).send().await.expect("page");
        let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        assert!(keys.len() <= 4);
        marker = keys.last().cloned();
        got.extend(keys);
        if out.is_truncated() != Some(true) {
            break;
        }
    }
    assert_eq!(got, all);

    // With a delimiter, NextMarker is given and may be a common prefix.
    let out = s3.list_objects().bucket(&bucket).delimiter("/").max_keys(2).send().await.expect("page");
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec!["a.txt"]);
    assert_eq!(out.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), vec!["photos/"]);
    assert_eq!(out.next_marker(), Some("photos/"));
    let out =
        s3.list_objects().bucket(&bucket).delimiter("/").max_keys(2).marker("photos/").send().await.expect("page");
    assert_eq!(out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec!["z"]);
    assert_eq!(out.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), vec!["zz/"]);
    assert_eq!(out.next_marker(), Some("zz/"));
    let out = s3.list_objects().bucket(&bucket).delimiter("/").max_keys(2).marker("zz/").send().await.expect("page");
    assert_eq!(out.common_prefixes().iter().filter_map(|p| p.prefix()).collect::<Vec<_>>(), vec!["é/"]);
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(out.next_marker(), None);

    let out = s3.list_objects().bucket(&bucket).prefix("photos/2024/").send().await.expect("list");
    assert_eq!(
        out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(),
        vec!["photos/2024/feb.jpg", "photos/2024/jan.jpg"]
    );
}

#[tokio::test]
async fn list_encoding_type_url() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "encoding").await;
    for key in ["dir one/a b.txt", "dir one/c+d", "dir%two/x", "plain", "ctl\u{1}char"] {
        put(&s3, &bucket, key, b"x").await;
    }
    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("list");
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url));
    let decode = |s: &str| urlencoding::decode(s).expect("url-encoded").into_owned();
    let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key()).map(decode).collect();
    assert_eq!(keys, vec!["ctl\u{1}char", "plain"]);
    let raw_keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert!(raw_keys.iter().all(|k| !k.contains('\u{1}')), "control characters are encoded: {raw_keys:?}");
    let prefixes: Vec<String> = out.common_prefixes().iter().filter_map(|p| p.prefix()).map(decode).collect();
    assert_eq!(prefixes, vec!["dir one/", "dir%two/"]);
    let raw: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert!(raw.iter().all(|p| !p.contains(' ')), "spaces are encoded: {raw:?}");

    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dir one/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("list");
    let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key()).map(decode).collect();
    assert_eq!(keys, vec!["dir one/a b.txt", "dir one/c+d"]);
    assert_eq!(out.prefix().map(decode).as_deref(), Some("dir one/"));

    let out = s3.list_objects().bucket(&bucket).encoding_type(EncodingType::Url).send().await.expect("list v1");
    let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key()).map(decode).collect();
    assert_eq!(keys.len(), 5);
    assert!(keys.contains(&"dir%two/x".to_owned()));

    let out =
        s3.list_object_versions().bucket(&bucket).encoding_type(EncodingType::Url).send().await.expect("versions");
    let mut keys: Vec<String> = out.versions().iter().filter_map(|v| v.key()).map(decode).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["ctl\u{1}char", "dir one/a b.txt", "dir one/c+d", "dir%two/x", "plain"]);
    assert!(out.versions().iter().filter_map(|v| v.key()).all(|k| !k.contains(' ')));

    let raw = region.signed("GET", &format!("/{bucket}?list-type=2&encoding-type=nope"), &[], b"").await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some("InvalidArgument")), "{}", raw.text());
}

// ---- model-based pagination ----------------------------------------------------------

#[derive(Debug, Clone)]
enum Action {
    Put(Index),
    Delete(Index),
    DeleteVersion(Index, Index),
}

#[derive(Debug, Clone)]
struct Query {
    prefix: String,
    delimiter: Option<String>,
    max_keys: i32,
}

#[derive(Debug, Clone)]
struct Case {
    keys: Vec<String>,
    actions: Vec<Action>,
    queries: Vec<Query>,
}

/// key → (version id, is delete marker), newest first.
type Model = BTreeMap<String, Vec<(String, bool)>>;

/// A listed item: a key with (version id, is latest, is delete marker), or a common prefix.
type Item = (String, Option<(String, bool, bool)>);

fn part() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "/", "é", "日", "z", "a/", "a b", "+"])
}

fn case() -> impl Strategy<Value = Case> {
    let key = prop::collection::vec(part(), 1..5).prop_map(|p| p.concat());
    let keys = prop::collection::btree_set(key, 1..12).prop_map(|s| s.into_iter().collect::<Vec<_>>());
    let action = prop_oneof![
        5 => any::<Index>().prop_map(Action::Put),
        2 => any::<Index>().prop_map(Action::Delete),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(k, v)| Action::DeleteVersion(k, v)),
    ];
    let query = (
        prop::collection::vec(part(), 0..2).prop_map(|p| p.concat()),
        prop::option::of(prop::sample::select(vec!["/", "a", "é", "b/"]).prop_map(str::to_owned)),
        1i32..5,
    )
        .prop_map(|(prefix, delimiter, max_keys)| Query { prefix, delimiter, max_keys });
    (keys, prop::collection::vec(action, 1..25), prop::collection::vec(query, 1..3))
        .prop_map(|(keys, actions, queries)| Case { keys, actions, queries })
}

fn group_of(key: &str, q: &Query) -> Option<String> {
    let delimiter = q.delimiter.as_deref()?;
    let rest = key.strip_prefix(q.prefix.as_str())?;
    let at = rest.find(delimiter)?;
    Some(key[..q.prefix.len() + at + delimiter.len()].to_owned())
}

/// Brute force: what a full listing must contain, in order.
fn expected(model: &Model, q: &Query, current_only: bool) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for (key, versions) in model {
        if !key.starts_with(q.prefix.as_str()) || (current_only && versions[0].1) {
            continue;
        }
        if let Some(group) = group_of(key, q) {
            if out.last().is_none_or(|(last, v)| v.is_some() || *last != group) {
                out.push((group, None));
            }
            continue;
        }
        let shown = if current_only { &versions[..1] } else { &versions[..] };
        for (i, (id, dm)) in shown.iter().enumerate() {
            out.push((key.clone(), Some((id.clone(), i == 0, *dm))));
        }
    }
    out
}

async fn apply(s3: &Client, bucket: &str, model: &mut Model, keys: &[String], action: &Action) {
    match action {
        Action::Put(i) => {
            let key = i.get(keys);
            let id = put(s3, bucket, key, key.as_bytes()).await.version_id.expect("version id");
            model.entry(key.clone()).or_default().insert(0, (id, false));
        }
        Action::Delete(i) => {
            let key = i.get(keys);
            let out = s3.delete_object().bucket(bucket).key(key).send().await.expect("delete");
            let id = out.version_id().expect("delete marker id").to_owned();
            model.entry(key.clone()).or_default().insert(0, (id, true));
        }
        Action::DeleteVersion(k, v) => {
            let key = k.get(keys);
            let Some(versions) = model.get_mut(key) else {
                return;
            };
            let (id, _) = v.get(versions).clone();
            s3.delete_object().bucket(bucket).key(key).version_id(&id).send().await.expect("delete version");
            versions.retain(|(other, _)| *other != id);
            if versions.is_empty() {
                model.remove(key);
            }
        }
    }
}

async fn list_v2_all(s3: &Client, bucket: &str, q: &Query) -> Result<Vec<Item>, TestCaseError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..500 {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&q.prefix)
            .set_delimiter(q.delimiter.clone())
            .max_keys(q.max_keys)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| TestCaseError::fail(format!("{:?}", DebugSdkError(&e))))?;
        let mut items: Vec<Item> = out
            .contents()
            .iter()
            .map(|o| (o.key().unwrap_or_default().to_owned(), Some((String::new(), true, false))))
            .collect();
        items.extend(out.common_prefixes().iter().map(|p| (p.prefix().unwrap_or_default().to_owned(), None)));
        items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        prop_assert_eq!(out.key_count(), Some(items.len() as i32));
        prop_assert!(items.len() <= q.max_keys as usize);
        all.extend(items);
        if out.is_truncated() != Some(true) {
            prop_assert_eq!(out.next_continuation_token(), None);
            return Ok(all);
        }
        prop_assert!(out.key_count() > Some(0), "a truncated page makes progress");
        token = out.next_continuation_token().map(str::to_owned);
        prop_assert!(token.is_some(), "a truncated page has a continuation token");
    }
    Err(TestCaseError::fail("ListObjectsV2 pagination does not end"))
}

async fn list_versions_all(s3: &Client, bucket: &str, q: &Query, model: &Model) -> Result<Vec<Item>, TestCaseError> {
    // Position of a version within its key, newest first (the SDK splits the two lists).
    let rank = |key: &str, id: &str| {
        model.get(key).and_then(|v| v.iter().position(|(other, _)| other == id)).unwrap_or(usize::MAX)
    };
    let mut all = Vec::new();
    let (mut key_marker, mut vid_marker): (Option<String>, Option<String>) = (None, None);
    for _ in 0..500 {
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(&q.prefix)
            .set_delimiter(q.delimiter.clone())
            .max_keys(q.max_keys)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(vid_marker.clone())
            .send()
            .await
            .map_err(|e| TestCaseError::fail(format!("{:?}", DebugSdkError(&e))))?;
        let mut items: Vec<(Item, usize)> = Vec::new();
        for v in out.versions() {
            let (key, id) = (v.key().unwrap_or_default(), v.version_id().unwrap_or_default());
            items.push(((key.to_owned(), Some((id.to_owned(), v.is_latest() == Some(true), false))), rank(key, id)));
        }
        for m in out.delete_markers() {
            let (key, id) = (m.key().unwrap_or_default(), m.version_id().unwrap_or_default());
            items.push(((key.to_owned(), Some((id.to_owned(), m.is_latest() == Some(true), true))), rank(key, id)));
        }
        for p in out.common_prefixes() {
            items.push(((p.prefix().unwrap_or_default().to_owned(), None), 0));
        }
        items.sort_by(|a, b| a.0.0.as_bytes().cmp(b.0.0.as_bytes()).then(a.1.cmp(&b.1)));
        let items: Vec<Item> = items.into_iter().map(|(item, _)| item).collect();
        prop_assert!(items.len() <= q.max_keys as usize);
        if out.is_truncated() != Some(true) {
            prop_assert_eq!(out.next_key_marker(), None);
            prop_assert_eq!(out.next_version_id_marker(), None);
            all.extend(items);
            return Ok(all);
        }
        // VER-20: the markers name the last entry returned.
        let last = items.last().cloned();
        prop_assert!(last.is_some(), "a truncated page makes progress");
        let (last_key, last_version) = last.unwrap_or_default();
        prop_assert_eq!(out.next_key_marker(), Some(last_key.as_str()));
        prop_assert_eq!(out.next_version_id_marker(), last_version.as_ref().map(|v| v.0.as_str()));
        key_marker = out.next_key_marker().map(str::to_owned);
        vid_marker = out.next_version_id_marker().map(str::to_owned);
        all.extend(items);
    }
    Err(TestCaseError::fail("ListObjectVersions pagination does not end"))
}

async fn run_case(s3: &Client, case: Case) -> Result<(), TestCaseError> {
    let bucket = create_versioned_bucket(s3, "model").await;
    let mut model = Model::new();
    for action in &case.actions {
        apply(s3, &bucket, &mut model, &case.keys, action).await;
    }
    for q in &case.queries {
        let want: Vec<Item> =
            expected(&model, q, true).into_iter().map(|(k, v)| (k, v.map(|_| (String::new(), true, false)))).collect();
        prop_assert_eq!(list_v2_all(s3, &bucket, q).await?, want, "ListObjectsV2 {:?}", q);
        prop_assert_eq!(
            list_versions_all(s3, &bucket, q, &model).await?,
            expected(&model, q, false),
            "ListObjectVersions {:?}",
            q
        );
    }
    Ok(())
}

/// Random version histories (shared prefixes, '/', spaces, '+', non-ASCII), listed page by
/// page with random max-keys, prefix and delimiter, equal a brute-force listing of a
/// `BTreeMap` model. One server for all cases; each case gets a fresh bucket.
#[test]
fn listing_pagination_equals_a_btreemap_model() {
    let region = TestRegion::start("us-east-1", &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let s3 = runtime.block_on(async { region.client() });
    let config = Config { cases: 16, max_shrink_iters: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |case| runtime.block_on(run_case(&s3, case)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
