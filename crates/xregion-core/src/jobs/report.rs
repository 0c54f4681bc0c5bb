//! What a job writes (BAT-7): the completion report (result CSVs and `manifest.json`) and,
//! with `EnableManifestOutput`, the generated manifest, as ordinary objects of this region,
//! a bounded number of rows per file.

use bytes::Bytes;
use futures::StreamExt as _;
use xregion_types::job::{JobRecord, JobTask, TaskOutcome};
use xregion_types::now_ms;

use super::PAGE;
use crate::objects::{ObjectMeta, PutRequest};
use crate::{CoreError, CoreResult, Region};

/// Rows per CSV file of a report or manifest output (about 15 MB of report rows).
const ROWS_PER_FILE: usize = 100_000;

/// `ReportSchema` of the completion report (BAT-7).
const REPORT_SCHEMA: &str = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

impl Region {
    /// The completion report (BAT-7): result CSVs for succeeded and failed tasks (only the
    /// failed ones with `FailedTasksOnly`), [`ROWS_PER_FILE`] rows a file, and the
    /// `manifest.json` that lists them, under `<prefix>/job-<id>/`.
    pub(super) async fn write_report(&self, job: &mut JobRecord) -> CoreResult<()> {
        let Some(report) = job.spec.report.clone() else { return Ok(()) };
        let base = job_prefix(report.prefix.as_deref(), &job.id);
        let mut succeeded = CsvFiles::new(&report.bucket, format!("{base}results/succeeded"));
        let mut failed_rows = CsvFiles::new(&report.bucket, format!("{base}results/failed"));
        let bucket = job.spec.bucket.clone();
        for page in self.task_pages(job) {
            for task in page? {
                let (target, status, http, code, message) = match &task.outcome {
                    TaskOutcome::Succeeded if report.failed_only => continue,
                    TaskOutcome::Succeeded => (&mut succeeded, "succeeded", 200, "", "Successful"),
                    TaskOutcome::Failed { code, http_status, message } => {
                        (&mut failed_rows, "failed", *http_status, code.as_str(), message.as_str())
                    }
                    // Cancelled or failed before the task ran.
                    TaskOutcome::Open => continue,
                };
                // The data columns are in the order of AWS's own reports: status, HTTP status,
                // error code, message (their `ReportSchema` line names the middle two the
                // other way round).
                let row = format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&bucket),
                    csv_field(&urlencoding::encode(&task.key)),
                    csv_field(task.version_id.as_str()),
                    status,
                    http,
                    csv_field(code),
                    csv_field(message)
                );
                target.push(self, &row).await?;
            }
        }
        let mut results = Vec::new();
        let mut keys = Vec::new();
        for (status, files) in [("succeeded", succeeded), ("failed", failed_rows)] {
            for (key, etag) in files.finish(self).await? {
                results.push(serde_json::json!({
                    "TaskExecutionStatus": status,
                    "Bucket": report.bucket,
                    "MD5Checksum": etag,
                    "Key": key,
                }));
                keys.push(key);
            }
        }
        let manifest = serde_json::json!({
            "Format": "Report_CSV_20180820",
            "ReportCreationDate": iso_time(now_ms()),
            "Results": results,
            "ReportSchema": REPORT_SCHEMA,
        });
        let key = format!("{base}manifest.json");
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.put_small_object(&report.bucket, &key, "application/json", body).await?;
        keys.push(key);
        job.report_keys = keys;
        Ok(())
    }

    /// With `EnableManifestOutput`: the generated manifest as CSV objects
    /// (`Bucket,Key,VersionId`, keys URL-encoded, [`ROWS_PER_FILE`] rows a file) named
    /// `<prefix>/job-<id>/manifest-<n>.csv`.
    pub(super) async fn write_manifest(&self, job: &mut JobRecord) -> CoreResult<()> {
        let Some(output) = job.spec.manifest_output.clone() else { return Ok(()) };
        let mut files =
            CsvFiles::new(&output.bucket, format!("{}manifest", job_prefix(output.prefix.as_deref(), &job.id)));
        let bucket = job.spec.bucket.clone();
        for page in self.task_pages(job) {
            for task in page? {
                let row = format!(
                    "{},{},{}\n",
                    csv_field(&bucket),
                    csv_field(&urlencoding::encode(&task.key)),
                    csv_field(task.version_id.as_str())
                );
                files.push(self, &row).await?;
            }
        }
        files.finish(self).await?;
        Ok(())
    }

    /// Writes an object the region produces itself (a report), encrypted if the bucket's
    /// default encryption says so; returns its ETag.
    pub(super) async fn put_small_object(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> CoreResult<String> {
        let len = body.len() as u64;
        let stream =
            futures::stream::once(async move { Ok::<_, crate::objects::BodyError>(Bytes::from(body)) }).boxed();
        let seal = self.write_encryption(bucket, None, None)?;
        let stored = self.write_body_sealed(stream, None, Some(len), seal.as_ref()).await?;
        let meta = ObjectMeta { content_type: Some(content_type.to_owned()), ..ObjectMeta::default() };
        let req = PutRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta,
            content_md5: None,
            checksum: None,
            precondition: None,
        };
        Ok(self.commit_put(req, stored).await?.record.object().map(|d| d.etag.clone()).unwrap_or_default())
    }

    /// The job's tasks in manifest order, a page per item.
    fn task_pages<'a>(&'a self, job: &'a JobRecord) -> impl Iterator<Item = CoreResult<Vec<JobTask>>> + Send + 'a {
        let mut from = Some(0);
        std::iter::from_fn(move || {
            let rows = match self.meta().job_tasks(job.seq, from?, PAGE) {
                Ok(rows) => rows,
                Err(e) => {
                    from = None;
                    return Some(Err(e.into()));
                }
            };
            from = rows.last().map(|(last, _)| last + 1);
            from.map(|_| Ok(rows.into_iter().map(|(_, task)| task).collect()))
        })
    }
}

/// Rows of a CSV the region writes (a report, a manifest): at most [`ROWS_PER_FILE`] rows a
/// file, so a job of any size is written with bounded memory. Files are `<stem>-<n>.csv`,
/// `n` from 1; no rows, no file.
pub(super) struct CsvFiles {
    bucket: String,
    stem: String,
    body: String,
    rows: usize,
    /// Rows per file.
    limit: usize,
    written: Vec<(String, String)>,
}

impl CsvFiles {
    fn new(bucket: &str, stem: String) -> Self {
        Self::with_limit(bucket, stem, ROWS_PER_FILE)
    }

    pub(super) fn with_limit(bucket: &str, stem: String, limit: usize) -> Self {
        Self { bucket: bucket.to_owned(), stem, body: String::new(), rows: 0, limit, written: Vec::new() }
    }

    pub(super) async fn push(&mut self, region: &Region, row: &str) -> CoreResult<()> {
        self.body.push_str(row);
        self.rows += 1;
        if self.rows >= self.limit {
            self.flush(region).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, region: &Region) -> CoreResult<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let key = format!("{}-{}.csv", self.stem, self.written.len() + 1);
        let body = std::mem::take(&mut self.body).into_bytes();
        let etag = region.put_small_object(&self.bucket, &key, "text/csv", body).await?;
        self.rows = 0;
        self.written.push((key, etag));
        Ok(())
    }

    /// Writes the last file; every file's key and ETag.
    pub(super) async fn finish(mut self, region: &Region) -> CoreResult<Vec<(String, String)>> {
        self.flush(region).await?;
        Ok(self.written)
    }
}

/// `<prefix>/job-<id>/` (no leading slash; the prefix's own trailing slash is not doubled).
pub(super) fn job_prefix(prefix: Option<&str>, id: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => format!("{p}/job-{id}/"),
        None => format!("job-{id}/"),
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub(super) fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// ISO-8601 UTC with milliseconds, as in `ReportCreationDate`.
pub(super) fn iso_time(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
}
