//! A user's CSV manifest (`Manifest`, `S3BatchOperations_CSV_20180820`, BAT-2): checked and
//! pinned at `CreateJob`, then read a chunk per step into the job's tasks.

use futures::StreamExt as _;
use xregion_types::job::{CsvManifest, JobRecord, JobTask, TaskOutcome};
use xregion_types::{BucketRecord, VersionId};

use super::{Step, failed, invalid_request};
use crate::{CoreError, CoreResult, Region};

/// Bytes of a CSV manifest read per step (a row is at most about 3 KiB: a bucket name, a
/// URL-encoded key of up to 1024 bytes, a version id).
pub(super) const MANIFEST_CHUNK: u64 = 256 * 1024;

impl Region {
    /// `Preparing` with a CSV manifest: the next chunk of its rows into the job's tasks.
    pub(super) async fn prepare_csv_page(&self, mut job: JobRecord, bucket: &BucketRecord) -> CoreResult<Step> {
        let Some(mut manifest) = job.spec.manifest.clone() else {
            return Err(CoreError::Internal("a CSV step for a job without a CSV manifest".into()));
        };
        let data = match self.manifest_object(&mut manifest) {
            Ok(data) => data,
            Err(CoreError::Invalid(e)) => return self.fail_job(job, "ManifestNotReadable", &e.message).await,
            Err(e) => return Err(e),
        };
        let start = job.manifest_offset;
        let end = data.size.min(start.saturating_add(MANIFEST_CHUNK));
        let chunk = self.read_range(&data, start, end).await?;
        // Whole lines only, unless this chunk ends the object.
        let used = match (end == data.size, chunk.iter().rposition(|b| *b == b'\n')) {
            (true, _) => chunk.len(),
            (false, Some(newline)) => newline + 1,
            (false, None) => {
                let reason = format!("A manifest row is longer than {MANIFEST_CHUNK} bytes.");
                return self.fail_job(job, "ManifestRowTooLong", &reason).await;
            }
        };
        let lines: Vec<&[u8]> = chunk[..used].split(|b| *b == b'\n').collect();
        let mut tasks = Vec::new();
        for line in lines.into_iter().filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            let task = match parse_manifest_row(line, manifest.with_version_ids) {
                Ok(row) if row.bucket != bucket.name.as_str() => JobTask {
                    key: row.key,
                    version_id: row.version_id.unwrap_or(VersionId::Null),
                    outcome: failed(
                        "InvalidRequest",
                        400,
                        &format!("The row names bucket {}; this job replicates {}.", row.bucket, bucket.name),
                    ),
                },
                Ok(row) => match row.version_id {
                    Some(version_id) => JobTask { key: row.key, version_id, outcome: TaskOutcome::Open },
                    // Without a version id, the current version (or delete marker) as it is now.
                    None => match self.meta().get_version(bucket.id, &row.key, None)? {
                        Some(current) => {
                            JobTask { key: row.key, version_id: current.version_id, outcome: TaskOutcome::Open }
                        }
                        None => JobTask {
                            key: row.key,
                            version_id: VersionId::Null,
                            outcome: failed("NoSuchKey", 404, "The key has no version."),
                        },
                    },
                },
                Err(e) => JobTask {
                    key: String::from_utf8_lossy(line).into_owned(),
                    version_id: VersionId::Null,
                    outcome: failed("InvalidRequest", 400, &e.to_string()),
                },
            };
            tasks.push((job.total_tasks, task));
            job.total_tasks += 1;
        }
        job.manifest_offset = start + used as u64;
        let done = job.manifest_offset >= data.size;
        self.store_job(&job, tasks).await?;
        if done {
            self.end_preparing(job).await?;
        }
        Ok(Step::Progress)
    }

    /// The manifest object's data, checked against the job's ETag.
    pub(super) fn manifest_object(&self, manifest: &mut CsvManifest) -> CoreResult<xregion_types::ObjectData> {
        let unreadable =
            |why: &str| invalid_request(format!("The manifest s3://{}/{} {why}.", manifest.bucket, manifest.key));
        let bucket = match self.bucket(&manifest.bucket) {
            Ok(bucket) => bucket,
            Err(CoreError::NoSuchBucket) => return Err(unreadable("is not in a bucket of this region")),
            Err(e) => return Err(e),
        };
        let version = manifest.version_id.as_deref().map(VersionId::parse).transpose()?;
        let record = self.meta().get_version(bucket.id, &manifest.key, version.as_ref())?;
        let Some(record) = record else { return Err(unreadable("does not exist")) };
        let Some(data) = record.object() else { return Err(unreadable("is a delete marker")) };
        if data.etag != manifest.etag {
            return Err(unreadable(&format!("has ETag {}, not {}", data.etag, manifest.etag)));
        }
        manifest.version_id = Some(record.version_id.as_str().to_owned());
        Ok(data.clone())
    }

    /// Bytes `start..end` of an object version, in memory.
    pub(super) async fn read_range(
        &self,
        data: &xregion_types::ObjectData,
        start: u64,
        end: u64,
    ) -> CoreResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = self.read_object(data, start, end);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| CoreError::Internal(format!("reading the manifest: {e}")))?);
        }
        Ok(out)
    }
}

/// One row of a CSV manifest.
#[derive(Debug, PartialEq, Eq)]
pub struct ManifestRow {
    /// Bucket name as written.
    pub bucket: String,
    /// Key, URL-decoded.
    pub key: String,
    /// Version id; `None` for the current version.
    pub version_id: Option<VersionId>,
}

/// Parses a manifest row: `Bucket,Key[,VersionId]` (RFC 4180 quoting allowed), the key
/// URL-encoded as S3 writes manifests. An empty version id means the current version.
pub fn parse_manifest_row(line: &[u8], with_version_ids: bool) -> CoreResult<ManifestRow> {
    let bad = |why: &str| invalid_request(format!("Manifest row {:?}: {why}.", String::from_utf8_lossy(line)));
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?.trim_end_matches('\r');
    let fields = csv_fields(line).ok_or_else(|| bad("unbalanced quotes"))?;
    let (bucket, key, version) = match (fields.as_slice(), with_version_ids) {
        ([bucket, key], false) | ([bucket, key], true) => (bucket, key, None),
        ([bucket, key, version], true) => (bucket, key, Some(version)),
        _ => return Err(bad("wrong number of fields")),
    };
    let key = urlencoding::decode(key).map_err(|_| bad("the key is not URL-encoded UTF-8"))?.into_owned();
    if bucket.is_empty() || key.is_empty() {
        return Err(bad("empty bucket or key"));
    }
    let version_id = version.filter(|v| !v.is_empty()).map(|v| VersionId::parse(v)).transpose()?;
    Ok(ManifestRow { bucket: bucket.clone(), key, version_id })
}

/// The fields of a CSV line (RFC 4180: fields in double quotes may hold commas and doubled
/// quotes); `None` for unbalanced quotes.
pub(super) fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    (!quoted).then_some(fields)
}
