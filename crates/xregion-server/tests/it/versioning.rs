//! Versioning, rule by rule (spec §1, VER-2..VER-20).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging};

use crate::common::*;

/// Changes the last character of a version id so that its check word no longer matches.
fn corrupt(id: &str) -> String {
    let mut s = id.to_owned();
    let last = s.pop().expect("non-empty id");
    s.push(if last == 'a' { 'b' } else { 'a' });
    s
}

/// VER-2, VER-3, VER-4: states, transitions, GetBucketVersioning, bad configurations.
#[tokio::test]
async fn ver2_ver3_ver4_versioning_states_and_configuration_errors() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "states").await;

    // VER-3: never configured → no Status element at all.
    let out = s3.get_bucket_versioning().bucket(&bucket).send().await.expect("get versioning");
    assert_eq!(out.status(), None);
    assert_eq!(out.mfa_delete(), None);
    let raw = region.signed("GET", &format!("/{bucket}?versioning"), &[], b"").await;
    assert_eq!(raw.status, 200);
    assert!(raw.text().contains("VersioningConfiguration") && !raw.text().contains("<Status>"), "{}", raw.text());

    // VER-2: Unversioned → Enabled → Suspended → Enabled.
    for status in [BucketVersioningStatus::Enabled, BucketVersioningStatus::Suspended, BucketVersioningStatus::Enabled]
    {
        set_versioning(&s3, &bucket, status.clone()).await;
        let out = s3.get_bucket_versioning().bucket(&bucket).send().await.expect("get versioning");
        assert_eq!(out.status(), Some(&status));
    }
    // Enabled again on an Enabled bucket is a no-op 200.
    set_versioning(&s3, &bucket, BucketVersioningStatus::Enabled).await;

    // VER-2: Unversioned → Suspended is accepted.
    let other = create_bucket(&s3, "states-susp").await;
    set_versioning(&s3, &other, BucketVersioningStatus::Suspended).await;
    let out = s3.get_bucket_versioning().bucket(&other).send().await.expect("get versioning");
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Suspended));

    // VER-4: a Status other than exactly Enabled/Suspended is MalformedXML; a missing Status
    // is IllegalVersioningConfigurationException. Neither changes the state.
    for (body, code) in [
        ("<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>", "MalformedXML"),
        ("<VersioningConfiguration><Status>Disabled</Status></VersioningConfiguration>", "MalformedXML"),
        ("<VersioningConfiguration></VersioningConfiguration>", "IllegalVersioningConfigurationException"),
    ] {
        let md5 = md5_b64(body.as_bytes());
        let raw =
            region.signed("PUT", &format!("/{other}?versioning"), &[("content-md5", &md5)], body.as_bytes()).await;
        assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some(code)), "{body}: {}", raw.text());
    }
    let out = s3.get_bucket_versioning().bucket(&other).send().await.expect("get versioning");
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Suspended));

    // VER-3: unknown bucket.
    let err =
        expect_error(s3.get_bucket_versioning().bucket("no-such-bucket-xr").send().await, 404, Some("NoSuchBucket"));
    assert!(err.message().is_some());
}

/// VER-6, VER-7: which responses carry `x-amz-version-id` in each state.
#[tokio::test]
async fn ver6_ver7_version_id_headers_by_state() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_bucket(&s3, "headers").await;

    // Unversioned: no header anywhere; ListObjectVersions shows `null`.
    let out = put(&s3, &bucket, "old", b"pre-versioning").await;
    assert_eq!(out.version_id(), None);
    let get = s3.get_object().bucket(&bucket).key("old").send().await.expect("get");
    assert_eq!(get.version_id(), None);
    let head = s3.head_object().bucket(&bucket).key("old").send().await.expect("head");
    assert_eq!(head.version_id(), None);
    assert_eq!(all_versions(&s3, &bucket).await, vec![("old".to_owned(), "null".to_owned(), true, false)]);

    // Enabled: PUT returns a fresh id; the pre-versioning object keeps `null` (VER-6).
    set_versioning(&s3, &bucket, BucketVersioningStatus::Enabled).await;
    let head = s3.head_object().bucket(&bucket).key("old").send().await.expect("head");
    assert_eq!(head.version_id(), Some("null"));
    assert_eq!(get_body(&s3, &bucket, "old", Some("null")).await, b"pre-versioning");
    let v1 = put(&s3, &bucket, "new", b"v1").await.version_id.expect("VER-7: PUT on Enabled returns an id");
    assert_eq!(v1.len(), 32, "VER-5 recommendation: 32 characters");
    assert!(v1.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'), "{v1}");
    assert_ne!(v1, "null");
    let get = s3.get_object().bucket(&bucket).key("new").send().await.expect("get");
    assert_eq!(get.version_id(), Some(v1.as_str()));
    let head = s3.head_object().bucket(&bucket).key("new").send().await.expect("head");
    assert_eq!(head.version_id(), Some(v1.as_str()));

    // Suspended: PUT returns no id; later GET/HEAD say `null`.
    set_versioning(&s3, &bucket, BucketVersioningStatus::Suspended).await;
    let out = put(&s3, &bucket, "new", b"suspended write").await;
    assert_eq!(out.version_id(), None);
    let get = s3.get_object().bucket(&bucket).key("new").send().await.expect("get");
    assert_eq!(get.version_id(), Some("null"));
    let head = s3.head_object().bucket(&bucket).key("new").send().await.expect("head");
    assert_eq!(head.version_id(), Some("null"));
    // The real id is still addressable.
    assert_eq!(get_body(&s3, &bucket, "new", Some(&v1)).await, b"v1");
}

/// VER-8: on an Enabled bucket every write is a new current version; old ones stay readable.
#[tokio::test]
async fn ver8_enabled_every_write_creates_a_new_current_version() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver8").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = put(&s3, &bucket, "k", format!("body {i}").as_bytes()).await.version_id.expect("id");
        assert!(!ids.contains(&id), "ids are unique");
        ids.push(id);
    }
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"body 3");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(get_body(&s3, &bucket, "k", Some(id)).await, format!("body {i}").as_bytes());
        let head = s3.head_object().bucket(&bucket).key("k").version_id(id).send().await.expect("head version");
        assert_eq!(head.version_id(), Some(id.as_str()));
        assert_eq!(head.e_tag().map(unquote), Some(md5_hex(format!("body {i}").as_bytes()).as_str()));
    }
    let listed = all_versions(&s3, &bucket).await;
    let expected: Vec<(String, String, bool, bool)> =
        ids.iter().rev().enumerate().map(|(i, id)| ("k".to_owned(), id.clone(), i == 0, false)).collect();
    assert_eq!(listed, expected, "newest first, only the newest is latest");
}

/// VER-9, VER-15 (Suspended): writes and deletes replace the `null` version only.
#[tokio::test]
async fn ver9_ver15_suspended_writes_and_deletes_replace_the_null_version_only() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver9").await;
    let v1 = put(&s3, &bucket, "k", b"real id").await.version_id.expect("id");
    set_versioning(&s3, &bucket, BucketVersioningStatus::Suspended).await;
    put(&s3, &bucket, "k", b"null one").await;
    put(&s3, &bucket, "k", b"null two").await;
    let listed = all_versions(&s3, &bucket).await;
    assert_eq!(
        listed,
        vec![("k".to_owned(), "null".to_owned(), true, false), ("k".to_owned(), v1.clone(), false, false)],
        "two suspended writes leave one null version"
    );
    assert_eq!(get_body(&s3, &bucket, "k", Some("null")).await, b"null two");
    assert_eq!(get_body(&s3, &bucket, "k", Some(&v1)).await, b"real id");

    // Suspended DELETE: removes the null version, inserts a null delete marker.
    let out = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete");
    assert_eq!(out.delete_marker(), Some(true));
    assert_eq!(out.version_id(), Some("null"));
    let listed = all_versions(&s3, &bucket).await;
    assert_eq!(
        listed,
        vec![("k".to_owned(), "null".to_owned(), true, true), ("k".to_owned(), v1.clone(), false, false)]
    );
    let err = expect_error(s3.get_object().bucket(&bucket).key("k").send().await, 404, Some("NoSuchKey"));
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header_of(&err, "x-amz-version-id"), Some("null"));

    // A suspended write replaces the null delete marker too.
    put(&s3, &bucket, "k", b"back").await;
    let listed = all_versions(&s3, &bucket).await;
    assert_eq!(listed, vec![("k".to_owned(), "null".to_owned(), true, false), ("k".to_owned(), v1, false, false)]);
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"back");
}

/// VER-11: conditional writes on a key whose current version is a delete marker.
#[tokio::test]
async fn ver11_conditional_writes_over_a_delete_marker() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver11").await;
    let etag = put(&s3, &bucket, "k", b"one").await.e_tag.expect("etag");
    let res =
        s3.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"x")).if_none_match("*").send().await;
    expect_error(res, 412, Some("PreconditionFailed"));
    s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete");

    // If-Match fails with NoSuchKey, If-None-Match: * succeeds (the key counts as absent).
    let res = s3.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"x")).if_match(&etag).send().await;
    expect_error(res, 404, Some("NoSuchKey"));
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"two"))
        .if_none_match("*")
        .send()
        .await
        .expect("If-None-Match: * over a delete marker");
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"two");
    assert_eq!(all_versions(&s3, &bucket).await.len(), 3);
}

/// VER-12, VER-13, VER-14: reads of delete markers.
#[tokio::test]
async fn ver12_ver13_ver14_reads_of_delete_markers() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver12").await;
    let v1 = put(&s3, &bucket, "k", b"data").await.version_id.expect("id");
    let del = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete");
    assert_eq!(del.delete_marker(), Some(true), "VER-15: x-amz-delete-marker: true");
    let dm = del.version_id().expect("VER-15: the new marker's id").to_owned();
    assert_ne!(dm, v1);

    // VER-12: current version is a DM → 404 NoSuchKey with the DM's headers.
    let err = expect_error(s3.get_object().bucket(&bucket).key("k").send().await, 404, Some("NoSuchKey"));
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header_of(&err, "x-amz-version-id"), Some(dm.as_str()));
    let err = expect_error(s3.head_object().bucket(&bucket).key("k").send().await, 404, None);
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header_of(&err, "x-amz-version-id"), Some(dm.as_str()));

    // VER-13: versionId names the DM → 405 MethodNotAllowed.
    let err = expect_error(
        s3.get_object().bucket(&bucket).key("k").version_id(&dm).send().await,
        405,
        Some("MethodNotAllowed"),
    );
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));
    assert!(header_of(&err, "last-modified").is_some(), "VER-13: Last-Modified of the DM");
    let err = expect_error(s3.head_object().bucket(&bucket).key("k").version_id(&dm).send().await, 405, None);
    assert_eq!(header_of(&err, "x-amz-delete-marker"), Some("true"));

    // The noncurrent object version is still readable by id.
    assert_eq!(get_body(&s3, &bucket, "k", Some(&v1)).await, b"data");

    // VER-14: tagging on a current DM is 405; the DM has no tag set.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("a").value("b").build().unwrap()).build().unwrap();
    let res = s3.put_object_tagging().bucket(&bucket).key("k").tagging(tagging).send().await;
    expect_error(res, 405, Some("MethodNotAllowed"));
    expect_error(s3.get_object_tagging().bucket(&bucket).key("k").send().await, 405, Some("MethodNotAllowed"));
    let res = s3.get_object_tagging().bucket(&bucket).key("k").version_id(&dm).send().await;
    expect_error(res, 405, Some("MethodNotAllowed"));

    // VER-15: a second DELETE adds another marker, even on a deleted or missing key.
    let dm2 = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete").version_id.expect("dm2");
    assert_ne!(dm2, dm);
    let dm3 = s3.delete_object().bucket(&bucket).key("never").send().await.expect("delete missing");
    assert_eq!(dm3.delete_marker(), Some(true));
    let listed = all_versions(&s3, &bucket).await;
    assert_eq!(
        listed,
        vec![
            ("k".to_owned(), dm2, true, true),
            ("k".to_owned(), dm, false, true),
            ("k".to_owned(), v1, false, false),
            ("never".to_owned(), dm3.version_id().unwrap().to_owned(), true, true),
        ]
    );
}

/// VER-10: tagging a version changes no version; VER-16: DELETE with versionId.
#[tokio::test]
async fn ver10_ver16_delete_by_version_and_undelete() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver16").await;
    let v1 = put(&s3, &bucket, "k", b"one").await.version_id.expect("v1");
    let v2 = put(&s3, &bucket, "k", b"two").await.version_id.expect("v2");

    // VER-10: tags on a noncurrent version do not create a version.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("x").value("y").build().unwrap()).build().unwrap();
    let out =
        s3.put_object_tagging().bucket(&bucket).key("k").version_id(&v1).tagging(tagging).send().await.expect("tag v1");
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(all_versions(&s3, &bucket).await.len(), 2);
    let tags = s3.get_object_tagging().bucket(&bucket).key("k").version_id(&v1).send().await.expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    let tags = s3.get_object_tagging().bucket(&bucket).key("k").send().await.expect("tags of current");
    assert!(tags.tag_set().is_empty());

    let dm = s3.delete_object().bucket(&bucket).key("k").send().await.expect("delete").version_id.expect("dm");
    expect_error(s3.get_object().bucket(&bucket).key("k").send().await, 404, Some("NoSuchKey"));

    // Removing the marker undeletes: the next newest (v2) becomes current.
    let out = s3.delete_object().bucket(&bucket).key("k").version_id(&dm).send().await.expect("delete dm");
    assert_eq!(out.delete_marker(), Some(true), "VER-16: removing a DM reports x-amz-delete-marker");
    assert_eq!(out.version_id(), Some(dm.as_str()));
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"two");
    let head = s3.head_object().bucket(&bucket).key("k").send().await.expect("head");
    assert_eq!(head.version_id(), Some(v2.as_str()));

    // Removing an object version is permanent, creates no marker; v1 becomes current.
    let out = s3.delete_object().bucket(&bucket).key("k").version_id(&v2).send().await.expect("delete v2");
    assert_eq!(out.delete_marker(), None);
    assert_eq!(out.version_id(), Some(v2.as_str()));
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"one");
    expect_error(s3.get_object().bucket(&bucket).key("k").version_id(&v2).send().await, 404, Some("NoSuchVersion"));
    assert_eq!(all_versions(&s3, &bucket).await, vec![("k".to_owned(), v1.clone(), true, false)]);

    // versionId=null targets the null version.
    set_versioning(&s3, &bucket, BucketVersioningStatus::Suspended).await;
    put(&s3, &bucket, "k", b"null").await;
    let out = s3.delete_object().bucket(&bucket).key("k").version_id("null").send().await.expect("delete null");
    assert_eq!(out.version_id(), Some("null"));
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"one");
}

/// VER-13, VER-16: malformed and unknown version ids.
#[tokio::test]
async fn ver13_ver16_invalid_and_unknown_version_ids() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver13").await;
    let v1 = put(&s3, &bucket, "k", b"one").await.version_id.expect("v1");
    let other = put(&s3, &bucket, "other", b"x").await.version_id.expect("other id");

    for bad in ["garbage", corrupt(&v1).as_str(), "", "NULL"] {
        if bad.is_empty() {
            continue;
        }
        let err = expect_error(
            s3.get_object().bucket(&bucket).key("k").version_id(bad).send().await,
            400,
            Some("InvalidArgument"),
        );
        assert!(err.message().unwrap_or_default().contains("Invalid version id"), "{:?}", err.message());
        expect_error(s3.head_object().bucket(&bucket).key("k").version_id(bad).send().await, 400, None);
        // VER-16: DELETE with an invalid id is 400 and carries no version headers.
        let err = expect_error(
            s3.delete_object().bucket(&bucket).key("k").version_id(bad).send().await,
            400,
            Some("InvalidArgument"),
        );
        assert_eq!(header_of(&err, "x-amz-version-id"), None);
        assert_eq!(header_of(&err, "x-amz-delete-marker"), None);
    }

    // Well-formed but not a version of this key: NoSuchVersion.
    let err = expect_error(
        s3.get_object().bucket(&bucket).key("k").version_id(&other).send().await,
        404,
        Some("NoSuchVersion"),
    );
    assert!(err.message().is_some());
    expect_error(s3.head_object().bucket(&bucket).key("k").version_id(&other).send().await, 404, None);
    // versionId=null when the key has no null version.
    expect_error(s3.get_object().bucket(&bucket).key("k").version_id("null").send().await, 404, Some("NoSuchVersion"));
    // Nothing was changed by any of it.
    assert_eq!(get_body(&s3, &bucket, "k", None).await, b"one");
    assert_eq!(all_versions(&s3, &bucket).await.len(), 2);

    // VER-13 on an unversioned bucket: versionId=null works, any other id is InvalidArgument.
    let plain = create_bucket(&s3, "ver13-plain").await;
    put(&s3, &plain, "k", b"plain").await;
    let out = s3.get_object().bucket(&plain).key("k").version_id("null").send().await.expect("versionId=null");
    assert_eq!(out.version_id(), None, "VER-13: no version header on an unversioned bucket");
    assert_eq!(out.body.collect().await.unwrap().into_bytes().as_ref(), b"plain");
    expect_error(s3.get_object().bucket(&plain).key("k").version_id(&v1).send().await, 400, Some("InvalidArgument"));
    expect_error(s3.head_object().bucket(&plain).key("k").version_id(&v1).send().await, 400, None);
}

/// VER-12, VER-13, VER-14, VER-20: the extra elements AWS puts in these error bodies.
#[tokio::test]
async fn ver12_ver13_ver14_error_bodies_name_key_version_method_and_argument() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "errbody").await;
    put(&s3, &bucket, "k", b"x").await;
    let other = put(&s3, &bucket, "other", b"x").await.version_id.expect("id");
    let dm = s3.delete_object().bucket(&bucket).key("gone").send().await.unwrap().version_id.unwrap();
    let text = |path: String| {
        let region = &region;
        async move { region.signed("GET", &path, &[], b"").await.text() }
    };

    // VER-12: NoSuchKey names the key.
    let body = text(format!("/{bucket}/gone")).await;
    assert_eq!(xml_element(&body, "Key").as_deref(), Some("gone"), "{body}");
    // VER-13/14: 405 names the method and the resource type.
    let body = text(format!("/{bucket}/gone?versionId={dm}")).await;
    assert_eq!(xml_element(&body, "Method").as_deref(), Some("GET"), "{body}");
    assert_eq!(xml_element(&body, "ResourceType").as_deref(), Some("DeleteMarker"), "{body}");
    // VER-13: NoSuchVersion names key and version.
    let body = text(format!("/{bucket}/k?versionId={other}")).await;
    assert_eq!(xml_element(&body, "Key").as_deref(), Some("k"), "{body}");
    assert_eq!(xml_element(&body, "VersionId").as_deref(), Some(other.as_str()), "{body}");
    // VER-13: InvalidArgument names the argument and its value.
    let body = text(format!("/{bucket}/k?versionId=garbage")).await;
    assert_eq!(xml_element(&body, "ArgumentName").as_deref(), Some("versionId"), "{body}");
    assert_eq!(xml_element(&body, "ArgumentValue").as_deref(), Some("garbage"), "{body}");
    // VER-20: so does a version-id-marker without a key-marker.
    let body = text(format!("/{bucket}?versions&version-id-marker={other}")).await;
    assert_eq!(xml_element(&body, "ArgumentName").as_deref(), Some("version-id-marker"), "{body}");
    // VER-3: NoSuchBucket names the bucket.
    let body = text("/no-such-bucket-xr?versioning".to_owned()).await;
    assert_eq!(xml_element(&body, "BucketName").as_deref(), Some("no-such-bucket-xr"), "{body}");
}

/// VER-17: DeleteObjects result shapes.
#[tokio::test]
async fn ver17_delete_objects_result_shapes() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver17").await;
    let va = put(&s3, &bucket, "a", b"a").await.version_id.expect("a");
    let other = put(&s3, &bucket, "other", b"o").await.version_id.expect("other");
    let ident = |key: &str, version: Option<&str>| {
        ObjectIdentifier::builder().key(key).set_version_id(version.map(str::to_owned)).build().unwrap()
    };

    // No VersionId: a new delete marker each, also for a key that never existed.
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(Delete::builder().objects(ident("a", None)).objects(ident("never", None)).build().unwrap())
        .send()
        .await
        .expect("delete objects");
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let mut markers = std::collections::HashMap::new();
    for d in out.deleted() {
        assert_eq!(d.delete_marker(), Some(true), "{d:?}");
        assert_eq!(d.version_id(), None, "{d:?}");
        let id = d.delete_marker_version_id().expect("DeleteMarkerVersionId").to_owned();
        markers.insert(d.key().unwrap().to_owned(), id);
    }
    assert_eq!(markers.len(), 2);
    let dm_a = markers["a"].clone();

    // VersionId of a DM: Key, VersionId, DeleteMarker, DeleteMarkerVersionId (same value).
    // VersionId of an object version: Key, VersionId only.
    // Unknown VersionId (existing key or not): Error NoSuchVersion.
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(
            Delete::builder()
                .objects(ident("a", Some(&dm_a)))
                .objects(ident("a", Some(&va)))
                .objects(ident("a", Some(&other)))
                .objects(ident("nobody", Some(&other)))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("delete versions");
    let find = |v: &str| out.deleted().iter().find(|d| d.version_id() == Some(v));
    let d = find(&dm_a).expect("deleted DM entry");
    assert_eq!(
        (d.key(), d.delete_marker(), d.delete_marker_version_id()),
        (Some("a"), Some(true), Some(dm_a.as_str()))
    );
    let d = find(&va).expect("deleted version entry");
    assert_eq!((d.key(), d.delete_marker(), d.delete_marker_version_id()), (Some("a"), None, None));
    assert_eq!(out.deleted().len(), 2, "{:?}", out.deleted());
    let mut errors: Vec<(&str, &str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or_default(), e.version_id().unwrap_or_default(), e.code().unwrap_or_default()))
        .collect();
    errors.sort_unstable();
    assert_eq!(
        errors,
        vec![("a", other.as_str(), "NoSuchVersion"), ("nobody", other.as_str(), "NoSuchVersion")],
        "VER-17: unknown VersionId is an Error entry"
    );

    // An invalid version id is reported per entry, too.
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(Delete::builder().objects(ident("other", Some("garbage"))).quiet(true).build().unwrap())
        .send()
        .await
        .expect("delete invalid id");
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert!(out.deleted().is_empty());
    // The other key is untouched.
    assert_eq!(get_body(&s3, &bucket, "other", None).await, b"o");
    let listed = all_versions(&s3, &bucket).await;
    let keys: Vec<(&str, bool)> = listed.iter().map(|e| (e.0.as_str(), e.3)).collect();
    assert_eq!(keys, vec![("never", true), ("other", false)]);
}

/// VER-19: ListObjects (v1 and v2) show only current versions that are not delete markers.
#[tokio::test]
async fn ver19_list_objects_hides_deleted_keys_and_noncurrent_versions() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver19").await;
    put(&s3, &bucket, "a", b"a1").await;
    put(&s3, &bucket, "a", b"a-two").await;
    put(&s3, &bucket, "b", b"b").await;
    put(&s3, &bucket, "c", b"c").await;
    s3.delete_object().bucket(&bucket).key("b").send().await.expect("delete b");
    s3.delete_object().bucket(&bucket).key("d").send().await.expect("marker only");

    let v2 = s3.list_objects_v2().bucket(&bucket).send().await.expect("list v2");
    let got: Vec<(&str, i64)> = v2.contents().iter().map(|o| (o.key().unwrap(), o.size().unwrap())).collect();
    assert_eq!(got, vec![("a", 5), ("c", 1)]);
    assert_eq!(v2.key_count(), Some(2));
    let v1 = s3.list_objects().bucket(&bucket).send().await.expect("list v1");
    let got: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, vec!["a", "c"]);
    // A page size of one still skips the hidden key.
    let page = s3.list_objects_v2().bucket(&bucket).max_keys(1).start_after("a").send().await.expect("page");
    assert_eq!(page.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(), vec!["c"]);
    assert_eq!(page.is_truncated(), Some(false));
}

/// VER-20: ListObjectVersions order, IsLatest, pagination with markers, errors.
#[tokio::test]
async fn ver20_list_object_versions_order_and_pagination() {
    let region = TestRegion::start("us-east-1", &[]);
    let s3 = region.client();
    let bucket = create_versioned_bucket(&s3, "ver20").await;
    // b: v, v, DM; a: v; c/x: v; c/y: DM, then (suspended) a null version on top of a.
    let mut expected: Vec<(String, String, bool, bool)> = Vec::new();
    let b1 = put(&s3, &bucket, "b", b"1").await.version_id.unwrap();
    let b2 = put(&s3, &bucket, "b", b"2").await.version_id.unwrap();
    let bdm = s3.delete_object().bucket(&bucket).key("b").send().await.unwrap().version_id.unwrap();
    let a1 = put(&s3, &bucket, "a", b"1").await.version_id.unwrap();
    let cx = put(&s3, &bucket, "c/x", b"1").await.version_id.unwrap();
    let cy = s3.delete_object().bucket(&bucket).key("c/y").send().await.unwrap().version_id.unwrap();
    set_versioning(&s3, &bucket, BucketVersioningStatus::Suspended).await;
    put(&s3, &bucket, "a", b"null").await;
    set_versioning(&s3, &bucket, BucketVersioningStatus::Enabled).await;
    expected.push(("a".into(), "null".into(), true, false));
    expected.push(("a".into(), a1.clone(), false, false));
    expected.push(("b".into(), bdm.clone(), true, true));
    expected.push(("b".into(), b2.clone(), false, false));
    expected.push(("b".into(), b1.clone(), false, false));
    expected.push(("c/x".into(), cx.clone(), true, false));
    expected.push(("c/y".into(), cy.clone(), true, true));

    // The SDK splits versions and markers into two lists; merged they are in listing order.
    assert_eq!(all_versions(&s3, &bucket).await, expected);

    // Every max-keys pages through the same sequence; the markers name the last entry.
    for max in 1..=4 {
        let mut got = Vec::new();
        let (mut key_marker, mut vid_marker): (Option<String>, Option<String>) = (None, None);
        for _ in 0..20 {
            let out = s3
                .list_object_versions()
                .bucket(&bucket)
                .max_keys(max)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(vid_marker.clone())
                .send()
                .await
                .expect("page");
            assert_eq!(out.max_keys(), Some(max));
            assert_eq!(out.key_marker(), Some(key_marker.as_deref().unwrap_or("")));
            let page = merge_versions(&out);
            assert!(page.len() <= max as usize);
            got.extend(page.iter().cloned());
            if out.is_truncated() != Some(true) {
                assert_eq!(out.next_key_marker(), None);
                break;
            }
            assert_eq!(page.len(), max as usize, "a truncated page is full");
            let last = page.last().unwrap();
            assert_eq!(out.next_key_marker(), Some(last.0.as_str()));
            assert_eq!(out.next_version_id_marker(), Some(last.1.as_str()));
            key_marker = out.next_key_marker().map(str::to_owned);
            vid_marker = out.next_version_id_marker().map(str::to_owned);
        }
        assert_eq!(got, expected, "max-keys {max}");
    }

    // key-marker alone skips every version of that key.
    let out = s3.list_object_versions().bucket(&bucket).key_marker("b").send().await.unwrap();
    assert_eq!(merge_versions(&out), expected[5..].to_vec());
    // key-marker + version-id-marker resumes right after that version.
    let out = s3.list_object_versions().bucket(&bucket).key_marker("b").version_id_marker(&b2).send().await.unwrap();
    assert_eq!(merge_versions(&out), expected[4..].to_vec());
    // ...and also after a null version.
    let out = s3.list_object_versions().bucket(&bucket).key_marker("a").version_id_marker("null").send().await.unwrap();
    assert_eq!(merge_versions(&out), expected[1..].to_vec());

    // Prefix and delimiter: c/ is one common prefix.
    let out = s3.list_object_versions().bucket(&bucket).delimiter("/").send().await.unwrap();
    assert_eq!(merge_versions(&out), expected[..5].to_vec());
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["c/"]);
    let out = s3.list_object_versions().bucket(&bucket).prefix("c/").send().await.unwrap();
    assert_eq!(merge_versions(&out), expected[5..].to_vec());
    assert_eq!(out.prefix(), Some("c/"));
    // A page that ends on a common prefix: NextKeyMarker is the prefix, no version marker.
    let out = s3.list_object_versions().bucket(&bucket).delimiter("/").max_keys(6).send().await.unwrap();
    assert_eq!(out.is_truncated(), Some(false));
    let out = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("")
        .delimiter("/")
        .key_marker("b")
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(out.common_prefixes().len(), 1);
    assert_eq!(out.is_truncated(), Some(false));

    // version-id-marker without key-marker: InvalidArgument.
    let res = s3.list_object_versions().bucket(&bucket).version_id_marker(&b1).send().await;
    let err = expect_error(res, 400, Some("InvalidArgument"));
    assert!(err.message().unwrap_or_default().contains("version-id marker"), "{:?}", err.message());
    // Bad encoding-type: InvalidArgument.
    let raw = region.signed("GET", &format!("/{bucket}?versions&encoding-type=base64"), &[], b"").await;
    assert_eq!((raw.status, raw.error_code().as_deref()), (400, Some("InvalidArgument")), "{}", raw.text());

    // Unversioned buckets list their objects with VersionId null.
    let plain = create_bucket(&s3, "ver20-plain").await;
    put(&s3, &plain, "x", b"1").await;
    put(&s3, &plain, "x", b"2").await;
    assert_eq!(all_versions(&s3, &plain).await, vec![("x".to_owned(), "null".to_owned(), true, false)]);
}
