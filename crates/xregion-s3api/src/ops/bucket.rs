//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use xregion_core::Region;
use xregion_core::buckets::BucketLocation;
use xregion_types::VersioningState;

use crate::convert::{tags_from, tags_to, ts};
use crate::error::IntoS3;

/// ListBuckets: every bucket of the deployment with its region (`BucketRegion`), in name
/// order, filtered by `prefix` and `bucket-region` and paged by `max-buckets` and
/// `continuation-token` as on AWS (see [`page_buckets`]); a peer asking with
/// `x-xregion-local-only` gets this region's buckets only, unpaged.
pub(crate) async fn list_buckets(
    r: &Region,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    if req.headers.contains_key(LOCAL_ONLY_HEADER) {
        let list = r
            .list_buckets()
            .s3()?
            .into_iter()
            .map(|b| Bucket {
                bucket_region: Some(r.name().to_owned()),
                creation_date: Some(ts(b.created_ms)),
                name: Some(b.name.as_str().to_owned()),
            })
            .collect();
        return Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(list),
            owner: Some(super::owner()),
            ..Default::default()
        }));
    }
    let input = req.input;
    let all = r.list_all_buckets().await.s3()?;
    let listed: Vec<(String, String, i64)> = all.into_iter().map(|b| (b.name, b.region, b.created_ms)).collect();
    let page = page_buckets(
        listed,
        input.prefix.as_deref(),
        input.bucket_region.as_deref(),
        input.continuation_token.as_deref(),
        input.max_buckets,
    )?;
    let buckets = page
        .buckets
        .into_iter()
        .map(|(name, region, created_ms)| Bucket {
            bucket_region: Some(region),
            creation_date: Some(ts(created_ms)),
            name: Some(name),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(super::owner()),
        continuation_token: page.next_token,
        prefix: input.prefix,
    }))
}

/// Largest `max-buckets` (and the page size when a filter or token comes without it).
const MAX_BUCKETS_LIMIT: i32 = 10_000;

/// One page of ListBuckets: `(name, region, created_ms)` rows and the token for the next page.
#[derive(Debug, PartialEq, Eq)]
struct BucketPage {
    buckets: Vec<(String, String, i64)>,
    next_token: Option<String>,
}

/// Filters and pages a name-ordered bucket list as AWS does: `prefix` and `region` filter;
/// `max_buckets` must be 1..=10000; without it, everything is returned unless a filter or a
/// token was given (then pages of 10000). The token is the last returned name, base64url
/// encoded (AWS's is opaque too); a token that does not decode is `InvalidArgument`.
fn page_buckets(
    all: Vec<(String, String, i64)>,
    prefix: Option<&str>,
    region: Option<&str>,
    token: Option<&str>,
    max_buckets: Option<i32>,
) -> S3Result<BucketPage> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let limit = match max_buckets {
        Some(n) if (1..=MAX_BUCKETS_LIMIT).contains(&n) => Some(n as usize),
        Some(_) => {
            return Err(s3_error!(InvalidArgument, "Argument max-buckets must be an integer between 1 and 10000"));
        }
        None if prefix.is_some() || region.is_some() || token.is_some() => Some(MAX_BUCKETS_LIMIT as usize),
        None => None,
    };
    let after = match token {
        None => None,
        Some(token) => {
            let name = engine.decode(token).ok().and_then(|raw| String::from_utf8(raw).ok());
            Some(name.ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?)
        }
    };
    let mut matching = all.into_iter().filter(|(name, bucket_region, _)| {
        prefix.is_none_or(|p| name.starts_with(p))
            && region.is_none_or(|r| bucket_region == r)
            && after.as_deref().is_none_or(|a| name.as_str() > a)
    });
    let buckets: Vec<_> = match limit {
        Some(limit) => matching.by_ref().take(limit).collect(),
        None => matching.by_ref().collect(),
    };
    let next_token = match (matching.next(), buckets.last()) {
        (Some(_), Some((last, _, _))) => Some(engine.encode(last)),
        _ => None,
    };
    Ok(BucketPage { buckets, next_token })
}

pub(crate) async fn create_bucket(
    r: &Region,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    if input.object_lock_enabled_for_bucket == Some(true) {
        return Err(s3_error!(NotImplemented, "Object Lock is not supported yet"));
    }
    let rec = r.create_bucket(&input.bucket, location.as_deref()).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", rec.name)) }))
}

/// Header a peer region sends to get an answer from local state only (no lookup loops).
const LOCAL_ONLY_HEADER: &str = "x-xregion-local-only";

/// HeadBucket answers for this region's buckets. One of another region ends in `NoSuchBucket`
/// here, and the server's edge passes the request on to its region, whose answer carries its
/// `x-amz-bucket-region` (peers ask with `x-xregion-local-only`, which the edge never forwards).
pub(crate) async fn head_bucket(r: &Region, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    r.bucket(&req.input.bucket).s3()?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(r.name().to_owned()), ..Default::default() }))
}

pub(crate) async fn get_bucket_location(
    r: &Region,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let region = match r.locate_bucket(&req.input.bucket).await.s3()? {
        BucketLocation::Local(_) => r.name().to_owned(),
        BucketLocation::Remote(region) => region,
    };
    // AWS reports us-east-1 as an empty LocationConstraint.
    let location_constraint = (region != "us-east-1").then(|| BucketLocationConstraint::from(region));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

pub(crate) async fn delete_bucket(
    r: &Region,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    r.delete_bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketOutput {}, http::StatusCode::NO_CONTENT))
}

pub(crate) async fn put_bucket_versioning(
    r: &Region,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let cfg = req.input.versioning_configuration;
    if cfg.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
    }
    // VER-4: missing Status → IllegalVersioningConfigurationException; other values → MalformedXML.
    let state = match cfg.status.as_ref().map(BucketVersioningStatus::as_str) {
        None => {
            return Err(s3_error!(IllegalVersioningConfigurationException, "The Versioning element must be specified"));
        }
        Some("Enabled") => VersioningState::Enabled,
        Some("Suspended") => VersioningState::Suspended,
        Some(_) => {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
    };
    r.bucket(&req.input.bucket).s3()?;
    r.set_versioning(&req.input.bucket, state).await.s3()?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub(crate) async fn get_bucket_versioning(
    r: &Region,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let b = r.bucket(&req.input.bucket).s3()?;
    // VER-3: no Status element for a never-configured bucket.
    let status = match b.versioning {
        VersioningState::Unversioned => None,
        VersioningState::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        VersioningState::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    Ok(S3Response::new(GetBucketVersioningOutput { mfa_delete: None, status }))
}

pub(crate) async fn put_bucket_tagging(
    r: &Region,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let tags = tags_from(&req.input.tagging.tag_set);
    r.set_bucket_tags(&req.input.bucket, tags).await.s3()?;
    Ok(S3Response::with_status(PutBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}

pub(crate) async fn get_bucket_tagging(
    r: &Region,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let b = r.bucket(&req.input.bucket).s3()?;
    if b.tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tags_to(&b.tags) }))
}

pub(crate) async fn delete_bucket_tagging(
    r: &Region,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    r.set_bucket_tags(&req.input.bucket, Vec::new()).await.s3()?;
    Ok(S3Response::with_status(DeleteBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rows(names: &[(&str, &str)]) -> Vec<(String, String, i64)> {
        names.iter().map(|(n, r)| ((*n).to_owned(), (*r).to_owned(), 1)).collect()
    }

    fn names(page: &BucketPage) -> Vec<&str> {
        page.buckets.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    #[test]
    fn filters_and_pages_like_aws() {
        let all = rows(&[("a1", "us"), ("a2", "eu"), ("b1", "us"), ("b2", "us")]);
        let page = page_buckets(all.clone(), None, None, None, None).unwrap();
        assert_eq!((names(&page), page.next_token.as_deref()), (vec!["a1", "a2", "b1", "b2"], None));
        let page = page_buckets(all.clone(), Some("a"), None, None, None).unwrap();
        assert_eq!(names(&page), ["a1", "a2"]);
        let page = page_buckets(all.clone(), None, Some("us"), None, Some(2)).unwrap();
        assert_eq!(names(&page), ["a1", "b1"]);
        let next = page.next_token.unwrap();
        let page = page_buckets(all.clone(), None, Some("us"), Some(&next), Some(2)).unwrap();
        assert_eq!((names(&page), page.next_token.as_deref()), (vec!["b2"], None));
        // An exact fit has no next token.
        assert_eq!(page_buckets(all.clone(), None, None, None, Some(4)).unwrap().next_token, None);
    }

    #[test]
    fn bad_arguments_are_invalid_argument() {
        for bad in [0, -1, 10_001] {
            let e = page_buckets(Vec::new(), None, None, None, Some(bad)).unwrap_err();
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument);
        }
        let e = page_buckets(Vec::new(), None, None, Some("%%%"), None).unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument);
    }

    proptest! {
        /// Following the tokens page by page yields exactly the filtered list, in order.
        #[test]
        fn pages_concatenate_to_the_filtered_list(
            mut list in prop::collection::btree_set("[a-c]{1,4}", 0..30),
            max in 1i32..7,
            prefix in prop::option::of("[a-c]{0,2}"),
        ) {
            let all: Vec<_> = std::mem::take(&mut list).into_iter().map(|n| (n, "r".to_owned(), 1)).collect();
            let want: Vec<String> = all.iter().map(|(n, _, _)| n.clone())
                .filter(|n| prefix.as_deref().is_none_or(|p| n.starts_with(p))).collect();
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = page_buckets(all.clone(), prefix.as_deref(), None, token.as_deref(), Some(max)).unwrap();
                prop_assert!(page.buckets.len() <= max as usize);
                got.extend(page.buckets.into_iter().map(|(n, _, _)| n));
                match page.next_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(got, want);
        }
    }
}
