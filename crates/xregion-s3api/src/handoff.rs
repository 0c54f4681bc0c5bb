//! Uploads for a bucket of another region, handed back to the server's edge to forward.
//!
//! The edge forwards a request for another region's bucket when it can pass it on whole
//! (`xregion-server`, `peers/forward.rs`). An upload's body cannot be kept aside the way a
//! small XML body is: it is streamed, and with `aws-chunked` framing each chunk is signed for
//! this region. So the edge puts an empty [`UploadHandoff`] into the request's extensions, and
//! PutObject or UploadPart, on finding the bucket is not here (before reading a byte), leaves
//! in it what the edge needs: the request's headers and the body as s3s decodes it, each
//! chunk's signature checked on the way. The edge then sends that body on, re-signed as the
//! deployment, to the bucket's region.
//!
//! A trailing checksum (`x-amz-trailer`) arrives after the last byte, too late to go into the
//! forwarded request's headers. The forwarded body therefore holds back its last chunk until
//! the trailer is read and matches what was computed; on a mismatch it ends in an error
//! instead, the bucket's region sees fewer bytes than announced and stores nothing, and the
//! client hears `BadDigest`, as from a local upload.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use http::{HeaderMap, StatusCode};
use s3s::S3Error;
use s3s::dto::StreamingBlob;
use xregion_blob::checksum::{Hasher, to_base64};
use xregion_core::CoreError;
use xregion_types::ChecksumAlgorithm;

use crate::error::to_s3;

/// Put into a request's extensions by the edge; filled by an upload for a bucket that is not
/// here. Cloning shares the slot.
#[derive(Clone, Default)]
pub struct UploadHandoff {
    slot: Arc<Mutex<Option<PendingUpload>>>,
}

impl std::fmt::Debug for UploadHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadHandoff").finish_non_exhaustive()
    }
}

impl UploadHandoff {
    /// The upload left here, if the operation found its bucket missing.
    pub fn take(&self) -> Option<PendingUpload> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn put(&self, upload: PendingUpload) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(upload);
    }
}

/// An upload to forward: the client's headers and its decoded body.
pub struct PendingUpload {
    /// The request's headers as the client sent them (the edge drops signing and framing).
    pub headers: HeaderMap,
    /// The decoded body. It ends in an error if the client's body fails, is shorter or
    /// longer than announced, or does not match its trailing checksum; [`Self::failure`]
    /// then says why.
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// The decoded length, to send as `Content-Length` (`None`: not announced).
    pub length: Option<u64>,
    /// The algorithm of a trailing checksum, which the bucket's region must compute too
    /// (the trailer itself is not forwarded).
    pub trailer_algorithm: Option<ChecksumAlgorithm>,
    /// Why the body ended in an error, once it has.
    pub failure: BodyFailure,
}

/// Why a forwarded body failed, as the S3 error a local upload would have answered.
#[derive(Clone, Default)]
pub struct BodyFailure {
    error: Arc<Mutex<Option<(StatusCode, String, String)>>>,
}

impl BodyFailure {
    /// Status, S3 error code and message, if the body failed.
    pub fn get(&self) -> Option<(StatusCode, String, String)> {
        self.error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, e: &S3Error) {
        let status = e.status_code().unwrap_or(StatusCode::BAD_REQUEST);
        let found = (status, e.code().as_str().to_owned(), e.message().unwrap_or_default().to_owned());
        self.error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(found);
    }
}

/// What an upload handler knows of its body when the bucket turns out not to be here.
pub(crate) struct Unsent<'a> {
    pub headers: &'a HeaderMap,
    pub body: Option<StreamingBlob>,
    pub length: Option<u64>,
    /// A trailing checksum: its algorithm and trailer name, and the trailers once read.
    pub trailer: Option<(ChecksumAlgorithm, &'static str, Option<s3s::TrailingHeaders>)>,
}

/// Reads the value a trailing checksum claims, once the body has ended.
type Claimed = Box<dyn FnOnce() -> Option<String> + Send>;

/// Hands an upload to the edge if the bucket is missing here and the edge asked for it.
/// Returns the error unchanged either way: without a handoff it is the answer.
pub(crate) fn hand_off(err: CoreError, extensions: &http::Extensions, unsent: Unsent<'_>) -> S3Error {
    if matches!(err, CoreError::NoSuchBucket)
        && let Some(handoff) = extensions.get::<UploadHandoff>()
    {
        let failure = BodyFailure::default();
        let trailer_algorithm = unsent.trailer.as_ref().map(|(alg, _, _)| *alg);
        let trailer = unsent.trailer.map(|(alg, name, trailers)| {
            let claimed: Claimed = Box::new(move || {
                trailers?.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())).flatten()
            });
            (alg, claimed)
        });
        let body = checked_body(unsent.body, unsent.length, trailer, failure.clone());
        handoff.put(PendingUpload {
            headers: unsent.headers.clone(),
            body,
            length: unsent.length,
            trailer_algorithm,
            failure,
        });
    }
    to_s3(err)
}

/// State of the forwarded body between chunks.
struct Checked {
    inner: Option<StreamingBlob>,
    length: Option<u64>,
    sent: u64,
    trailer: Option<(Hasher, Claimed)>,
    /// The last chunk read, held back while a trailer is to be checked.
    held: Option<Bytes>,
    failure: BodyFailure,
    done: bool,
}

impl Checked {
    /// Ends the body in an error, and records why.
    fn fail(self, e: S3Error) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        self.failure.set(&e);
        let message = e.message().unwrap_or("the request body failed").to_owned();
        let finished = Checked {
            inner: None,
            length: None,
            sent: 0,
            trailer: None,
            held: None,
            failure: self.failure,
            done: true,
        };
        Some((Err(std::io::Error::other(message)), finished))
    }

    /// At the end of the client's body: the length and trailer checks, then the held chunk.
    fn end(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        self.done = true;
        if let Some(len) = self.length
            && len != self.sent
        {
            let sent = self.sent;
            return self.fail(to_s3(CoreError::IncompleteBody(format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header ({len} declared, {sent} received)"
            ))));
        }
        if let Some((hasher, claimed)) = self.trailer.take() {
            let algorithm = hasher.algorithm();
            let computed = to_base64(&hasher.finalize());
            let claimed = claimed();
            // No trailer value: nothing is claimed, as for a local upload.
            if claimed.is_some_and(|c| c != computed) {
                return self.fail(to_s3(CoreError::BadDigest(format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm.as_str()
                ))));
            }
        }
        let held = self.held.take()?;
        Some((Ok(held), self))
    }
}

/// The body as forwarded: the client's decoded body, checked as described in the module docs.
fn checked_body(
    body: Option<StreamingBlob>,
    length: Option<u64>,
    trailer: Option<(ChecksumAlgorithm, Claimed)>,
    failure: BodyFailure,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    let state = Checked {
        inner: body,
        length,
        sent: 0,
        trailer: trailer.map(|(alg, claimed)| (Hasher::new(alg), claimed)),
        held: None,
        failure,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let next = match st.inner.as_mut() {
                Some(inner) => inner.next().await,
                None => None,
            };
            match next {
                None => return st.end(),
                Some(Err(e)) => return st.fail(to_s3(CoreError::Body(e))),
                Some(Ok(chunk)) => {
                    st.sent += chunk.len() as u64;
                    if let Some(len) = st.length
                        && st.sent > len
                    {
                        let sent = st.sent;
                        return st.fail(to_s3(CoreError::IncompleteBody(format!(
                            "The request body is longer than the Content-Length HTTP header ({len} declared, at least {sent} sent)"
                        ))));
                    }
                    let Some((hasher, _)) = st.trailer.as_mut() else {
                        return Some((Ok(chunk), st));
                    };
                    hasher.update(&chunk);
                    if let Some(previous) = st.held.replace(chunk) {
                        return Some((Ok(previous), st));
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(chunks: &[&'static [u8]]) -> StreamingBlob {
        let items: Vec<Result<Bytes, std::io::Error>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        StreamingBlob::wrap(futures::stream::iter(items))
    }

    async fn collect(mut s: BoxStream<'static, Result<Bytes, std::io::Error>>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    #[tokio::test]
    async fn a_plain_body_passes_as_it_is() {
        let failure = BodyFailure::default();
        let body = checked_body(Some(blob(&[b"hello ", b"world"])), Some(11), None, failure.clone());
        assert_eq!(collect(body).await, (b"hello world".to_vec(), true));
        assert!(failure.get().is_none());
    }

    #[tokio::test]
    async fn a_short_or_long_body_ends_in_incomplete_body() {
        for (len, chunks) in [(12u64, &[&b"hello "[..], &b"world"[..]][..]), (5, &[&b"hello "[..]][..])] {
            let failure = BodyFailure::default();
            let (_, ok) = collect(checked_body(Some(blob(chunks)), Some(len), None, failure.clone())).await;
            assert!(!ok);
            let (status, code, _) = failure.get().expect("failure recorded");
            assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "IncompleteBody"));
        }
    }

    #[tokio::test]
    async fn a_trailer_is_checked_before_the_last_chunk_is_sent() {
        let right = to_base64(&xregion_blob::checksum::digest(ChecksumAlgorithm::Crc32, b"abcdef"));
        let claims: [(Option<String>, bool); 3] = [(Some(right), true), (None, true), (Some("AAAAAA==".into()), false)];
        for (claim, passes) in claims {
            let failure = BodyFailure::default();
            let trailer: Claimed = Box::new(move || claim);
            let body = checked_body(
                Some(blob(&[b"ab", b"cd", b"ef"])),
                Some(6),
                Some((ChecksumAlgorithm::Crc32, trailer)),
                failure.clone(),
            );
            let (sent, ok) = collect(body).await;
            assert_eq!(ok, passes);
            if passes {
                assert_eq!(sent, b"abcdef");
                assert!(failure.get().is_none());
            } else {
                // The last chunk never left: the bucket's region sees a short body.
                assert_eq!(sent, b"abcd");
                let (status, code, message) = failure.get().expect("failure recorded");
                assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "BadDigest"));
                assert!(message.contains("CRC32"), "{message}");
            }
        }
    }
}
