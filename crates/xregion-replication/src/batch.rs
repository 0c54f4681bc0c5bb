//! Batched replica writes, source side: many small versions and delete markers of one
//! destination bucket in one signed `POST /_xregion/replicate/<bucket>` (wire format:
//! `xregion_core::replica_batch`), each entry answered on its own.
//!
//! Sent with hyper and `xregion_identity::sigv4` rather than `aws-sdk-s3`: the SDK has no operation for a
//! custom path, and this request is the hot path of small-object replication, where the SDK's
//! per-request machinery was a large share of the source's CPU.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use xregion_core::Region;
use xregion_core::objects::ObjectMeta;
use xregion_core::replica::checksum_header;
use xregion_core::replica_batch::{self, BatchEntry, BatchObject, EntryResult};
use xregion_identity::Credential;
use xregion_identity::sigv4::sign_request;
use xregion_types::VersionRecord;
use xregion_types::replication::TaskKind;

use crate::s3::classify_response;
use crate::transport::{Connector, DisplayErr, Transport};
use crate::{Replica, ReplicationError};

/// Largest response body read (one short line per entry).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTP side: a pooled hyper client and the signing identity.
pub(crate) struct BatchClient {
    http: Client<Connector, Full<Bytes>>,
    credential: Credential,
    timeout: Duration,
}

/// True if a task of `kind` on `version` may travel in a batch: a delete marker, or an object
/// version of at most [`replica_batch::BATCH_OBJECT_MAX`] bytes. Tag changes and larger
/// objects go one by one.
pub(crate) fn batchable(kind: TaskKind, version: &VersionRecord) -> bool {
    // The `null` version goes alone, with its stamp in `x-xregion-source-stamp`: batch
    // entries have no room for it, and their binary layout stays as peers of an older
    // version read it.
    if version.version_id.is_null() {
        return false;
    }
    match kind {
        TaskKind::DeleteMarker => true,
        // An SSE-C version goes alone too (it travels sealed), and so does one with part
        // checksums: batch entries can say neither.
        TaskKind::Object => version.object().is_some_and(|d| {
            d.size <= replica_batch::BATCH_OBJECT_MAX
                && !d.encryption.as_ref().is_some_and(|e| e.is_customer_key())
                && d.part_checksums.is_empty()
        }),
        TaskKind::Tags => false,
    }
}

impl BatchClient {
    pub(crate) fn new(
        transport: &Transport,
        access_key: &str,
        secret_key: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Self {
        let http = Client::builder(TokioExecutor::new()).build(transport.connector(Some(connect_timeout)));
        let credential = Credential { access_key: access_key.to_owned(), secret_key: secret_key.to_owned() };
        Self { http, credential, timeout }
    }

    /// Sends `replicas` (all [`batchable`], all to one destination bucket living in region
    /// `owner` at `endpoint`) in one request; one result per replica, in order.
    pub(crate) async fn send(
        &self,
        region: &Region,
        owner: &str,
        endpoint: &str,
        replicas: &[&Replica],
    ) -> Vec<Result<(), ReplicationError>> {
        let mut results: Vec<Option<Result<(), ReplicationError>>> = vec![None; replicas.len()];
        let mut entries = Vec::with_capacity(replicas.len());
        let mut sent = Vec::with_capacity(replicas.len());
        // Every inline body of the batch from one read of the store.
        let inline_of = |r: &&Replica| match r.kind {
            TaskKind::Object => r.version.object().and_then(|d| d.inline),
            _ => None,
        };
        let mut inline = match region.meta().get_inlines(replicas.iter().filter_map(inline_of)) {
            Ok(bodies) => Ok(bodies.into_iter()),
            Err(e) => Err(ReplicationError::retryable(format!("reading the source versions: {e}"))),
        };
        for (i, r) in replicas.iter().enumerate() {
            let body = match (inline_of(r), &mut inline) {
                (None, _) => Ok(None),
                (Some(_), Ok(bodies)) => Ok(bodies.next().flatten()),
                (Some(_), Err(e)) => Err(e.clone()),
            };
            let entry = match body {
                Ok(body) => entry_of(region, r, body).await,
                Err(e) => Err(e),
            };
            match entry {
                Ok(entry) => {
                    entries.push(entry);
                    sent.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !entries.is_empty() {
            let bucket = &replicas[sent[0]].destination_bucket;
            let answers = self.post(owner, endpoint, bucket, replica_batch::encode(&entries)).await;
            for (j, i) in sent.iter().enumerate() {
                let kind = replicas[*i].kind;
                results[*i] = Some(match &answers {
                    Ok(lines) => match lines.get(j) {
                        Some(EntryResult::Ok) => Ok(()),
                        Some(EntryResult::Err { status, code, .. }) => Err(classify_response(*status, code, kind)),
                        None => Err(ReplicationError::retryable("replica batch answer is short")),
                    },
                    Err(Answer::Transport(e)) => Err(e.clone()),
                    Err(Answer::Status(status, code)) => Err(classify_response(*status, code, kind)),
                });
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(ReplicationError::retryable("not sent")))).collect()
    }

    async fn post(&self, owner: &str, endpoint: &str, bucket: &str, body: Vec<u8>) -> Result<Vec<EntryResult>, Answer> {
        let transport = |e: String| Answer::Transport(ReplicationError::unavailable(e));
        let uri = format!("{}/_xregion/replicate/{bucket}", endpoint.trim_end_matches('/'));
        let parsed: http::Uri = uri.parse().map_err(|e| transport(format!("bad endpoint {uri}: {e}")))?;
        let host = parsed.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let mut req = http::Request::post(parsed)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(format!("building the batch request: {e}")))?;
        sign_request(&mut req, &self.credential, owner)
            .map_err(|e| Answer::Transport(ReplicationError::retryable(e)))?;
        let resp = match tokio::time::timeout(self.timeout, self.http.request(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(transport(format!("destination unreachable: {}", DisplayErr(&e)))),
            Err(_) => return Err(transport("replica batch timed out".to_owned())),
        };
        let status = resp.status().as_u16();
        let body = match tokio::time::timeout(
            self.timeout,
            Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(transport(format!("reading the batch answer: {e}"))),
            Err(_) => return Err(transport("replica batch answer timed out".to_owned())),
        };
        let text = String::from_utf8_lossy(&body);
        if status != 200 {
            return Err(Answer::Status(status, error_code(&text)));
        }
        replica_batch::decode_results(&text)
            .ok_or_else(|| Answer::Transport(ReplicationError::retryable("unreadable replica batch answer")))
    }
}

/// Why a whole batch got no per-entry answer.
enum Answer {
    /// Not sent or no answer: every entry gets this error.
    Transport(ReplicationError),
    /// An S3 error for the whole request (status, code): classified per entry kind.
    Status(u16, String),
}

/// The `<Code>` of an S3 error body, or `""`.
fn error_code(xml: &str) -> String {
    xml.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_default()
}

/// The batch entry of a replica, with its bytes: `inline` (as stored: opened here if
/// encrypted) if they were read already, else read from the source (small: at most [`replica_batch::BATCH_OBJECT_MAX`]).
async fn entry_of(
    region: &Region,
    r: &Replica,
    inline: Option<Vec<u8>>,
) -> Result<(BatchEntry, Bytes), ReplicationError> {
    let v = &r.version;
    let mut entry = BatchEntry {
        key: r.key.clone(),
        version_id: v.version_id.as_str().to_owned(),
        last_modified_ms: v.last_modified_ms,
        object: None,
    };
    if r.kind == TaskKind::DeleteMarker {
        return Ok((entry, Bytes::new()));
    }
    let Some(data) = v.object() else {
        return Err(ReplicationError::permanent("SrcObjectNotEligible", "object task on a delete marker"));
    };
    let inline = match inline.map(|stored| region.inline_plaintext(data, stored)).transpose() {
        Ok(plain) => plain.map(Bytes::from),
        Err(e) => return Err(ReplicationError::retryable(format!("reading the source version: {e}"))),
    };
    let bytes = match (data.inline, inline) {
        (Some(_), Some(bytes)) if bytes.len() as u64 == data.size => bytes,
        (Some(_), Some(bytes)) => {
            return Err(ReplicationError::retryable(format!(
                "reading the source version: inline data has {} bytes, its metadata says {}",
                bytes.len(),
                data.size
            )));
        }
        // Gone since the version was read (DEL-1): the retry reads the version again.
        (Some(_), None) => {
            return Err(ReplicationError::retryable("reading the source version: its inline data is gone"));
        }
        (None, _) => {
            let mut bytes = BytesMut::with_capacity(usize::try_from(data.size).unwrap_or(0));
            let mut stream = region.read_object(data, 0, data.size);
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| ReplicationError::retryable(format!("reading the source version: {e}")))?;
                bytes.extend_from_slice(&chunk);
            }
            bytes.freeze()
        }
    };
    let mut meta = ObjectMeta::from_data(data);
    if let Some(class) = &r.storage_class {
        meta.storage_class = Some(class.clone());
    }
    entry.object = Some(BatchObject {
        etag: data.etag.clone(),
        part_sizes: data.part_sizes.clone(),
        checksum: data.checksum.as_ref().map(checksum_header),
        meta,
        encrypted: data.encryption.is_some(),
    });
    Ok((entry, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_of_s3_xml() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        assert_eq!(error_code(xml), "AccessDenied");
        assert_eq!(error_code("garbage"), "");
    }
}
