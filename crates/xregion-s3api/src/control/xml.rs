//! XML codec of the S3 Control batch-operations job API (version 2018-08-20, REST-XML),
//! limited to batch replication: an `S3ReplicateObject` job whose manifest is generated
//! (`ManifestGenerator`) or a CSV object (`Manifest`).
//!
//! Parses a `CreateJobRequest` body into a [`JobSpec`] and a `PutJobTaggingRequest` into a tag
//! set, and renders the bodies of the `CreateJob`, `DescribeJob`, `ListJobs`,
//! `UpdateJobStatus`, `UpdateJobPriority` and job tagging results.
//! Element names, their order and list members follow botocore's `s3control/2018-08-20` shapes:
//! lists are wrapped, one `<member>` element per item. Nothing here does I/O; the only outside
//! input is the clock, for the time a running job has been active.

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_xml_entity};
use quick_xml::events::{BytesRef, BytesStart, Event};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use xregion_types::job::{CsvManifest, JobFilter, JobRecord, JobReportSpec, JobSpec, JobStatus, ManifestOutput};
use xregion_types::{BucketName, ReplicationStatus};

/// XML namespace of the API's request and response documents.
pub(crate) const NAMESPACE: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

/// Error code: the body is not well-formed XML, or a value does not parse as its type.
pub(crate) const MALFORMED_XML: &str = "MalformedXML";
/// Error code: a required element is missing or a value is not allowed.
pub(crate) const INVALID_REQUEST: &str = "InvalidRequest";
/// Error code: valid S3 Control, but not something this store does.
pub(crate) const NOT_IMPLEMENTED: &str = "NotImplemented";

/// The only `Report.Format` (`JobReportFormat`).
const REPORT_FORMAT: &str = "Report_CSV_20180820";
/// The user-supplied manifest format this store reads (`JobManifestFormat`).
const CSV_MANIFEST_FORMAT: &str = "S3BatchOperations_CSV_20180820";
/// The only `ManifestOutputLocation.ManifestFormat` (`GeneratedManifestFormat`).
const MANIFEST_FORMAT: &str = "S3InventoryReport_CSV_20211130";
/// The one supported operation: its `JobOperation` member and its `OperationName`.
const OPERATION: &str = "S3ReplicateObject";
/// `SuspendedCause` of a job waiting for its confirmation.
const AWAITING_CONFIRMATION: &str = "AwaitingConfirmation";
/// Name of a wrapped list's items.
const MEMBER: &str = "member";
/// Deepest element nesting a request may have (a `CreateJobRequest` needs 8 levels).
const MAX_DEPTH: usize = 16;
/// Longest bucket ARN (`S3BucketArnString`).
const MAX_BUCKET_ARN: usize = 128;

/// A request the API refuses: the AWS error code and the message, from which the caller builds
/// the S3 error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct ControlError {
    /// AWS error code ([`MALFORMED_XML`], [`INVALID_REQUEST`] or [`NOT_IMPLEMENTED`]).
    pub(crate) code: &'static str,
    /// Human-readable message.
    pub(crate) message: String,
}

impl ControlError {
    /// An error with an AWS code and a message.
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// [`MALFORMED_XML`].
    fn malformed(message: impl Into<String>) -> Self {
        Self::new(MALFORMED_XML, message)
    }

    /// [`INVALID_REQUEST`].
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }

    /// [`NOT_IMPLEMENTED`].
    fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(NOT_IMPLEMENTED, message)
    }
}

// ---------------------------------------------------------------------------------------------
// CreateJobRequest
// ---------------------------------------------------------------------------------------------

/// Parses a `CreateJobRequest` body (shape `CreateJobRequest`) into the job it asks for, under
/// `account_id` (the `x-amz-account-id` header).
///
/// Only an `S3ReplicateObject` operation is accepted, over a `ManifestGenerator` or a CSV
/// `Manifest`; `ExpectedBucketOwner`, `ManifestEncryption` and `MatchAnyObjectEncryption` are
/// ignored. Errors: [`MALFORMED_XML`] for a body that is not well-formed or a value that does
/// not parse, [`NOT_IMPLEMENTED`] for an S3 Inventory manifest, [`INVALID_REQUEST`] for
/// anything else.
pub(crate) fn parse_create_job(body: &[u8], account_id: &str) -> Result<JobSpec, ControlError> {
    let root = Element::parse(body)?;
    if root.name != "CreateJobRequest" {
        return Err(ControlError::malformed(format!("The root element must be CreateJobRequest, not {}", root.name)));
    }
    check_operation(root.required("Operation")?)?;
    let (generator, manifest) = match (root.child("Manifest")?, root.child("ManifestGenerator")?) {
        (None, Some(generator)) => (parse_generator(generator)?, None),
        (Some(manifest), None) => {
            let none = Generator { bucket: String::new(), filter: JobFilter::default(), manifest_output: None };
            (none, Some(parse_manifest(manifest)?))
        }
        (Some(_), Some(_)) => {
            return Err(ControlError::invalid("Specify either a Manifest or a ManifestGenerator, not both"));
        }
        (None, None) => return Err(ControlError::invalid("A Manifest or a ManifestGenerator is required")),
    };
    let report = parse_report(root.required("Report")?)?;
    let priority = parse_i64(root.required("Priority")?)?;
    let priority = i32::try_from(priority)
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ControlError::invalid(format!("Priority must be between 0 and {}", i32::MAX)))?;
    Ok(JobSpec {
        account_id: account_id.to_owned(),
        bucket: generator.bucket,
        manifest,
        filter: generator.filter,
        report,
        manifest_output: generator.manifest_output,
        priority,
        role_arn: root.required_text("RoleArn", 2048)?.to_owned(),
        description: root.optional_text("Description", 256)?.map(str::to_owned),
        confirmation_required: root.child("ConfirmationRequired")?.map(parse_bool).transpose()?.unwrap_or(false),
        client_token: root.required_text("ClientRequestToken", 64)?.to_owned(),
        tags: parse_tags(root.child("Tags")?)?,
    })
}

/// Parses a `PutJobTaggingRequest` body: the job's new tag set (possibly empty).
pub(crate) fn parse_put_job_tagging(body: &[u8]) -> Result<Vec<(String, String)>, ControlError> {
    let root = Element::parse(body)?;
    if root.name != "PutJobTaggingRequest" {
        return Err(ControlError::malformed(format!(
            "The root element must be PutJobTaggingRequest, not {}",
            root.name
        )));
    }
    parse_tags(Some(root.required("Tags")?))
}

/// Parses a tag set (shape `S3TagSet`: `<member><Key>…</Key><Value>…</Value></member>`…);
/// none when absent. Counts and lengths are checked by the job engine.
fn parse_tags(tags: Option<&Element>) -> Result<Vec<(String, String)>, ControlError> {
    let members = tags.into_iter().flat_map(|t| t.children.iter()).filter(|c| c.name == MEMBER);
    members
        .map(|tag| {
            let key = tag.required("Key")?.text.clone();
            let value = tag.child("Value")?.map(|v| v.text.clone()).unwrap_or_default();
            Ok((key, value))
        })
        .collect()
}

/// Checks that `Operation` (shape `JobOperation`) names `S3ReplicateObject` and nothing else.
fn check_operation(operation: &Element) -> Result<(), ControlError> {
    match operation.children.as_slice() {
        [only] if only.name == OPERATION => Ok(()),
        [] => Err(ControlError::invalid(
            "Operation must name the job's operation: only S3ReplicateObject (batch replication) is supported",
        )),
        [only] => Err(ControlError::invalid(format!(
            "The operation {} is not supported: only S3ReplicateObject (batch replication) is supported",
            only.name
        ))),
        _ => Err(ControlError::invalid(
            "Operation must name exactly one operation: only S3ReplicateObject (batch replication) is supported",
        )),
    }
}

/// Parses `Manifest` (shape `JobManifest`): a CSV manifest (`S3BatchOperations_CSV_20180820`)
/// with the fields `Bucket, Key` or `Bucket, Key, VersionId`; an inventory report manifest is
/// [`NOT_IMPLEMENTED`].
fn parse_manifest(manifest: &Element) -> Result<CsvManifest, ControlError> {
    let spec = manifest.required("Spec")?;
    let format = spec.required_text("Format", usize::MAX)?;
    if format != CSV_MANIFEST_FORMAT {
        return Err(ControlError::not_implemented(format!(
            "Manifest Format {format} is not supported: the only format is {CSV_MANIFEST_FORMAT}"
        )));
    }
    let fields: Vec<&str> = member_texts(spec.child("Fields")?).map(str::trim).collect();
    let with_version_ids = match fields.as_slice() {
        ["Bucket", "Key"] => false,
        ["Bucket", "Key", "VersionId"] => true,
        other => {
            return Err(ControlError::invalid(format!(
                "Manifest Fields must be Bucket, Key or Bucket, Key, VersionId, not {}",
                other.join(", ")
            )));
        }
    };
    let location = manifest.required("Location")?;
    let arn = location.required_text("ObjectArn", 2000)?;
    let (bucket, key) = arn
        .split_once(":s3:::")
        .filter(|(head, _)| head.starts_with("arn:"))
        .and_then(|(_, path)| path.split_once('/'))
        .filter(|(_, key)| !key.is_empty())
        .ok_or_else(|| {
            ControlError::invalid(format!("Manifest ObjectArn must be like arn:aws:s3:::bucket/key, not {arn}"))
        })?;
    let bucket = BucketName::parse(bucket).map_err(|e| ControlError::invalid(format!("ObjectArn: {}", e.message)))?;
    Ok(CsvManifest {
        bucket: bucket.as_str().to_owned(),
        key: key.to_owned(),
        version_id: location.optional_text("ObjectVersionId", 2000)?.map(str::to_owned),
        etag: location.required_text("ETag", 1024)?.trim_matches('"').to_owned(),
        with_version_ids,
    })
}

/// What `ManifestGenerator` asks for.
struct Generator {
    /// `SourceBucket`, by name.
    bucket: String,
    /// `Filter`.
    filter: JobFilter,
    /// `ManifestOutputLocation`, when `EnableManifestOutput` is true.
    manifest_output: Option<ManifestOutput>,
}

/// Parses `ManifestGenerator` (shape `JobManifestGenerator`, holding an `S3JobManifestGenerator`).
fn parse_generator(generator: &Element) -> Result<Generator, ControlError> {
    let s3 = generator.required("S3JobManifestGenerator")?;
    let bucket = bucket_from_arn("SourceBucket", s3.required_text("SourceBucket", MAX_BUCKET_ARN)?)?;
    let manifest_output = if parse_bool(s3.required("EnableManifestOutput")?)? {
        let location = s3.child("ManifestOutputLocation")?.ok_or_else(|| {
            ControlError::invalid("EnableManifestOutput is true, so a ManifestOutputLocation is required")
        })?;
        Some(parse_manifest_output(location)?)
    } else {
        None
    };
    let filter = s3.child("Filter")?.map(parse_filter).transpose()?.unwrap_or_default();
    Ok(Generator { bucket, filter, manifest_output })
}

/// Parses `ManifestOutputLocation` (shape `S3ManifestOutputLocation`).
fn parse_manifest_output(location: &Element) -> Result<ManifestOutput, ControlError> {
    let bucket = bucket_from_arn("ManifestOutputLocation.Bucket", location.required_text("Bucket", MAX_BUCKET_ARN)?)?;
    if let Some(format) = location.optional_text("ManifestFormat", usize::MAX)?
        && format != MANIFEST_FORMAT
    {
        return Err(ControlError::invalid(format!(
            "ManifestFormat {format} is not supported: the only format is {MANIFEST_FORMAT}"
        )));
    }
    let prefix = location.optional_text("ManifestPrefix", 512)?.map(str::to_owned);
    Ok(ManifestOutput { bucket, prefix })
}

/// Parses `Filter` (shape `JobManifestGeneratorFilter`).
fn parse_filter(filter: &Element) -> Result<JobFilter, ControlError> {
    let statuses = member_texts(filter.child("ObjectReplicationStatuses")?)
        .map(|name| {
            parse_status_filter(name.trim()).ok_or_else(|| {
                ControlError::invalid(format!(
                    "ObjectReplicationStatuses: {name:?} is not one of NONE, FAILED, COMPLETED, REPLICA"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let key_names = filter.child("KeyNameConstraint")?;
    let key_constraint = |list: &str| -> Result<Vec<String>, ControlError> {
        let Some(key_names) = key_names else { return Ok(Vec::new()) };
        member_texts(key_names.child(list)?)
            .map(|item| checked_len(&format!("KeyNameConstraint.{list}"), item, 1024).map(str::to_owned))
            .collect()
    };
    Ok(JobFilter {
        eligible_for_replication: filter.child("EligibleForReplication")?.map(parse_bool).transpose()?.unwrap_or(false),
        created_after_ms: filter.child("CreatedAfter")?.map(parse_time_ms).transpose()?,
        created_before_ms: filter.child("CreatedBefore")?.map(parse_time_ms).transpose()?,
        statuses,
        match_any_prefix: key_constraint("MatchAnyPrefix")?,
        match_any_suffix: key_constraint("MatchAnySuffix")?,
        match_any_substring: key_constraint("MatchAnySubstring")?,
        size_greater_than: filter.child("ObjectSizeGreaterThanBytes")?.map(parse_size).transpose()?,
        size_less_than: filter.child("ObjectSizeLessThanBytes")?.map(parse_size).transpose()?,
        storage_classes: member_texts(filter.child("MatchAnyStorageClass")?).map(str::to_owned).collect(),
    })
}

/// Parses `Report` (shape `JobReport`): `None` when it is not enabled.
fn parse_report(report: &Element) -> Result<Option<JobReportSpec>, ControlError> {
    if !parse_bool(report.required("Enabled")?)? {
        return Ok(None);
    }
    let bucket = bucket_from_arn("Report.Bucket", report.required_text("Bucket", MAX_BUCKET_ARN)?)?;
    let format = report.required_text("Format", usize::MAX)?;
    if format != REPORT_FORMAT {
        return Err(ControlError::invalid(format!(
            "Report Format {format} is not supported: the only format is {REPORT_FORMAT}"
        )));
    }
    let failed_only = match report.optional_text("ReportScope", usize::MAX)? {
        None | Some("AllTasks") => false,
        Some("FailedTasksOnly") => true,
        Some(other) => {
            return Err(ControlError::invalid(format!("ReportScope {other} is not one of AllTasks, FailedTasksOnly")));
        }
    };
    let prefix = report.optional_text("Prefix", 512)?.map(str::to_owned);
    Ok(Some(JobReportSpec { bucket, prefix, failed_only }))
}

/// The bucket named by a bucket ARN (`arn:{partition}:s3:::{name}`) given as `field`.
fn bucket_from_arn(field: &str, arn: &str) -> Result<String, ControlError> {
    let name = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(partition, _)| !partition.is_empty())
        .and_then(|(_, rest)| rest.strip_prefix("s3:::"))
        .ok_or_else(|| {
            ControlError::invalid(format!("{field} must be a bucket ARN like arn:aws:s3:::bucket-name, not {arn}"))
        })?;
    let bucket = BucketName::parse(name).map_err(|e| ControlError::invalid(format!("{field}: {}", e.message)))?;
    Ok(bucket.as_str().to_owned())
}

/// The filter status named `name` (`ReplicationStatus` of the API), if any.
fn parse_status_filter(name: &str) -> Option<ReplicationStatus> {
    match name {
        "NONE" => Some(ReplicationStatus::None),
        "FAILED" => Some(ReplicationStatus::Failed),
        "COMPLETED" => Some(ReplicationStatus::Completed),
        "REPLICA" => Some(ReplicationStatus::Replica),
        _ => None,
    }
}

/// The API name of a filter status; `None` for the states a filter cannot name.
fn status_filter_name(status: &ReplicationStatus) -> Option<&'static str> {
    match status {
        ReplicationStatus::None => Some("NONE"),
        ReplicationStatus::Failed => Some("FAILED"),
        ReplicationStatus::Completed => Some("COMPLETED"),
        ReplicationStatus::Replica => Some("REPLICA"),
        ReplicationStatus::Pending | ReplicationStatus::ReplicaPending | ReplicationStatus::ReplicaFailed => None,
    }
}

/// A `boolean` value: `true` or `false`.
fn parse_bool(element: &Element) -> Result<bool, ControlError> {
    match element.text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ControlError::malformed(format!("{}: {other:?} is not a boolean", element.name))),
    }
}

/// An `integer` or `long` value.
fn parse_i64(element: &Element) -> Result<i64, ControlError> {
    let value = element.text.trim();
    value.parse().map_err(|_| ControlError::malformed(format!("{}: {value:?} is not an integer", element.name)))
}

/// A size in bytes: a `long` that is not negative.
fn parse_size(element: &Element) -> Result<u64, ControlError> {
    u64::try_from(parse_i64(element)?)
        .map_err(|_| ControlError::invalid(format!("{} must not be negative", element.name)))
}

/// A `timestamp` value (ISO 8601 / RFC 3339, as botocore sends it, fractional seconds and UTC
/// offsets allowed), in milliseconds since the epoch.
fn parse_time_ms(element: &Element) -> Result<i64, ControlError> {
    let value = element.text.trim();
    let bad = || ControlError::malformed(format!("{}: {value:?} is not an RFC 3339 timestamp", element.name));
    let time = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| bad())?;
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| bad())
}

/// `value` of `field` when it is `1..=max` characters long.
fn checked_len<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ControlError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(ControlError::invalid(format!("{field} must be between 1 and {max} characters long")));
    }
    Ok(value)
}

/// Texts of the items of a wrapped list (its `<member>` children); none when the list is absent.
fn member_texts(list: Option<&Element>) -> impl Iterator<Item = &str> {
    list.into_iter().flat_map(|list| list.children.iter()).filter(|c| c.name == MEMBER).map(|c| c.text.as_str())
}

// ---------------------------------------------------------------------------------------------
// Element tree
// ---------------------------------------------------------------------------------------------

/// One element of a parsed document: its name without namespace prefix, its text (entities
/// resolved, CDATA included) and its child elements in document order. Attributes (the
/// namespace declaration) are dropped.
#[derive(Debug, Default)]
struct Element {
    /// Local name.
    name: String,
    /// Text content directly inside the element.
    text: String,
    /// Child elements.
    children: Vec<Element>,
}

impl Element {
    /// Parses a whole document into its root element. Anything but one well-formed UTF-8
    /// document without DTD, nested at most [`MAX_DEPTH`] deep, is [`MALFORMED_XML`].
    fn parse(body: &[u8]) -> Result<Self, ControlError> {
        let body = std::str::from_utf8(body).map_err(|_| ControlError::malformed("The request body is not UTF-8"))?;
        let not_well_formed =
            |e: quick_xml::Error| ControlError::malformed(format!("The XML you provided was not well-formed: {e}"));
        let mut reader = Reader::from_str(body);
        let mut open: Vec<Self> = Vec::new();
        let mut root = None;
        loop {
            match reader.read_event().map_err(not_well_formed)? {
                Event::Start(start) => {
                    if root.is_some() {
                        return Err(ControlError::malformed("The document has more than one root element"));
                    }
                    if open.len() >= MAX_DEPTH {
                        return Err(ControlError::malformed("The document is nested too deeply"));
                    }
                    open.push(Self::named(&start)?);
                }
                Event::Empty(start) => Self::close(Self::named(&start)?, &mut open, &mut root)?,
                Event::End(_) => {
                    let element = open.pop().ok_or_else(|| ControlError::malformed("Unmatched end tag"))?;
                    Self::close(element, &mut open, &mut root)?;
                }
                Event::Text(text) => {
                    Self::append(&mut open, &text.xml10_content().map_err(|e| not_well_formed(e.into()))?)?;
                }
                Event::CData(data) => {
                    Self::append(&mut open, &data.xml10_content().map_err(|e| not_well_formed(e.into()))?)?;
                }
                Event::GeneralRef(reference) => Self::append(&mut open, &resolve_reference(&reference)?)?,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::DocType(_) => return Err(ControlError::malformed("A document type declaration is not allowed")),
                Event::Eof => break,
            }
        }
        if let Some(unclosed) = open.last() {
            return Err(ControlError::malformed(format!("The element {} is not closed", unclosed.name)));
        }
        root.ok_or_else(|| ControlError::malformed("The request body has no root element"))
    }

    /// A new, empty element named like the tag `start`.
    fn named(start: &BytesStart<'_>) -> Result<Self, ControlError> {
        let name = std::str::from_utf8(start.local_name().into_inner())
            .map_err(|_| ControlError::malformed("An element name is not UTF-8"))?;
        Ok(Self { name: name.to_owned(), ..Self::default() })
    }

    /// Attaches the finished `element` to the innermost open element, or makes it the root.
    fn close(element: Self, open: &mut [Self], root: &mut Option<Self>) -> Result<(), ControlError> {
        match open.last_mut() {
            Some(parent) => parent.children.push(element),
            None if root.is_none() => *root = Some(element),
            None => return Err(ControlError::malformed("The document has more than one root element")),
        }
        Ok(())
    }

    /// Appends `text` to the innermost open element; outside the root only whitespace may be.
    fn append(open: &mut [Self], text: &str) -> Result<(), ControlError> {
        match open.last_mut() {
            Some(element) => element.text.push_str(text),
            None if text.trim().is_empty() => {}
            None => return Err(ControlError::malformed("Text outside the root element")),
        }
        Ok(())
    }

    /// The child named `name`, if any; more than one is [`MALFORMED_XML`].
    fn child(&self, name: &str) -> Result<Option<&Self>, ControlError> {
        let mut found = self.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ControlError::malformed(format!("{}.{name} appears more than once", self.name)));
        }
        Ok(first)
    }

    /// The child named `name`; missing is [`INVALID_REQUEST`].
    fn required(&self, name: &str) -> Result<&Self, ControlError> {
        self.child(name)?.ok_or_else(|| ControlError::invalid(format!("{}.{name} is required", self.name)))
    }

    /// Text of the child `name`, when present, checked to be `1..=max` characters long.
    fn optional_text(&self, name: &str, max: usize) -> Result<Option<&str>, ControlError> {
        self.child(name)?.map(|c| checked_len(&format!("{}.{name}", self.name), &c.text, max)).transpose()
    }

    /// Text of the required child `name`, checked to be `1..=max` characters long.
    fn required_text(&self, name: &str, max: usize) -> Result<&str, ControlError> {
        checked_len(&format!("{}.{name}", self.name), &self.required(name)?.text, max)
    }
}

/// The text an entity or character reference stands for (only the five XML entities exist).
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, ControlError> {
    let bad = || ControlError::malformed("The XML you provided contains an invalid character or entity reference");
    if let Some(ch) = reference.resolve_char_ref().map_err(|_| bad())? {
        return Ok(ch.to_string());
    }
    let name = reference.decode().map_err(|_| bad())?;
    resolve_xml_entity(&name).map(str::to_owned).ok_or_else(bad)
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// Renders the `CreateJob` result (shape `CreateJobResult`).
pub(crate) fn render_create_job(job_id: &str) -> String {
    Writer::document("CreateJobResult", |w| w.text("JobId", job_id))
}

/// Renders the `DescribeJob` result (shape `DescribeJobResult`, its `Job` a `JobDescriptor`)
/// of `job`, whose ARN names `region`.
pub(crate) fn render_describe_job(job: &JobRecord, region: &str) -> String {
    describe_job_at(job, region, xregion_types::now_ms())
}

/// [`render_describe_job`] with the clock read: `now_ms` ends the active time of a running job.
fn describe_job_at(job: &JobRecord, region: &str, now_ms: i64) -> String {
    let spec = &job.spec;
    Writer::document("DescribeJobResult", |w| {
        w.element("Job", |w| {
            w.text("JobId", &job.id);
            w.text("ConfirmationRequired", bool_str(spec.confirmation_required));
            w.opt_text("Description", spec.description.as_deref());
            w.text("JobArn", &format!("arn:aws:s3:{region}:{}:job/{}", spec.account_id, job.id));
            w.text("Status", job.status.as_str());
            if let Some(manifest) = &spec.manifest {
                csv_manifest(w, manifest);
            }
            w.element("Operation", |w| w.empty(OPERATION));
            w.text("Priority", &job.priority.to_string());
            progress_summary(w, job, now_ms);
            w.opt_text("StatusUpdateReason", job.status_update_reason.as_deref());
            if !job.failure_reasons.is_empty() {
                w.element("FailureReasons", |w| {
                    for (code, reason) in &job.failure_reasons {
                        w.element(MEMBER, |w| {
                            w.text("FailureCode", code);
                            w.text("FailureReason", reason);
                        });
                    }
                });
            }
            report(w, spec.report.as_ref());
            w.text("CreationTime", &iso8601(job.created_ms));
            w.opt_text("TerminationDate", job.terminated_ms.map(iso8601).as_deref());
            w.text("RoleArn", &spec.role_arn);
            if let Some(suspended_ms) = job.suspended_ms {
                w.text("SuspendedDate", &iso8601(suspended_ms));
                if job.status == JobStatus::Suspended {
                    w.text("SuspendedCause", AWAITING_CONFIRMATION);
                }
            }
            if spec.manifest.is_none() {
                manifest_generator(w, spec);
            }
        });
    })
}

/// Renders the `ListJobs` result (shape `ListJobsResult`, each job a `JobListDescriptor`).
pub(crate) fn render_list_jobs(jobs: &[JobRecord], next_token: Option<&str>) -> String {
    list_jobs_at(jobs, next_token, xregion_types::now_ms())
}

/// [`render_list_jobs`] with the clock read (see [`describe_job_at`]).
fn list_jobs_at(jobs: &[JobRecord], next_token: Option<&str>, now_ms: i64) -> String {
    Writer::document("ListJobsResult", |w| {
        w.opt_text("NextToken", next_token);
        w.element("Jobs", |w| {
            for job in jobs {
                w.element(MEMBER, |w| {
                    w.text("JobId", &job.id);
                    w.opt_text("Description", job.spec.description.as_deref());
                    w.text("Operation", OPERATION);
                    w.text("Priority", &job.priority.to_string());
                    w.text("Status", job.status.as_str());
                    w.text("CreationTime", &iso8601(job.created_ms));
                    w.opt_text("TerminationDate", job.terminated_ms.map(iso8601).as_deref());
                    progress_summary(w, job, now_ms);
                });
            }
        });
    })
}

/// Renders the `UpdateJobStatus` result (shape `UpdateJobStatusResult`).
pub(crate) fn render_update_job_status(job: &JobRecord) -> String {
    Writer::document("UpdateJobStatusResult", |w| {
        w.text("JobId", &job.id);
        w.text("Status", job.status.as_str());
        w.opt_text("StatusUpdateReason", job.status_update_reason.as_deref());
    })
}

/// Renders the `UpdateJobPriority` result (shape `UpdateJobPriorityResult`).
pub(crate) fn render_update_job_priority(job: &JobRecord) -> String {
    Writer::document("UpdateJobPriorityResult", |w| {
        w.text("JobId", &job.id);
        w.text("Priority", &job.priority.to_string());
    })
}

/// Renders the `GetJobTagging` result (shape `GetJobTaggingResult`).
pub(crate) fn render_get_job_tagging(job: &JobRecord) -> String {
    Writer::document("GetJobTaggingResult", |w| {
        w.element("Tags", |w| {
            for (key, value) in &job.tags {
                w.element(MEMBER, |w| {
                    w.text("Key", key);
                    w.text("Value", value);
                });
            }
        });
    })
}

/// Renders the empty result of `PutJobTagging` or `DeleteJobTagging` (`root`).
pub(crate) fn render_empty(root: &str) -> String {
    Writer::document(root, |_| {})
}

/// Writes `Manifest` (shape `JobManifest`) of a CSV manifest.
fn csv_manifest(w: &mut Writer, manifest: &CsvManifest) {
    w.element("Manifest", |w| {
        w.element("Spec", |w| {
            w.text("Format", CSV_MANIFEST_FORMAT);
            w.element("Fields", |w| {
                w.text(MEMBER, "Bucket");
                w.text(MEMBER, "Key");
                if manifest.with_version_ids {
                    w.text(MEMBER, "VersionId");
                }
            });
        });
        w.element("Location", |w| {
            w.text("ObjectArn", &format!("arn:aws:s3:::{}/{}", manifest.bucket, manifest.key));
            w.opt_text("ObjectVersionId", manifest.version_id.as_deref());
            w.text("ETag", &manifest.etag);
        });
    });
}

/// Writes `ProgressSummary` (shape `JobProgressSummary`).
fn progress_summary(w: &mut Writer, job: &JobRecord, now_ms: i64) {
    w.element("ProgressSummary", |w| {
        w.text("TotalNumberOfTasks", &job.total_tasks.to_string());
        w.text("NumberOfTasksSucceeded", &job.succeeded.to_string());
        w.text("NumberOfTasksFailed", &job.failed.to_string());
        w.element("Timers", |w| {
            w.text("ElapsedTimeInActiveSeconds", &active_seconds(job, now_ms).to_string());
        });
    });
}

/// Whole seconds from the job becoming `Active` to its end (or `now_ms`); 0 if it never was.
fn active_seconds(job: &JobRecord, now_ms: i64) -> i64 {
    job.active_since_ms.map_or(0, |since| job.terminated_ms.unwrap_or(now_ms).saturating_sub(since).max(0) / 1000)
}

/// Writes `Report` (shape `JobReport`); a disabled report is `<Enabled>false</Enabled>` alone.
fn report(w: &mut Writer, report: Option<&JobReportSpec>) {
    w.element("Report", |w| match report {
        Some(report) => {
            w.text("Bucket", &bucket_arn(&report.bucket));
            w.text("Format", REPORT_FORMAT);
            w.text("Enabled", bool_str(true));
            w.opt_text("Prefix", report.prefix.as_deref());
            w.text("ReportScope", if report.failed_only { "FailedTasksOnly" } else { "AllTasks" });
        }
        None => w.text("Enabled", bool_str(false)),
    });
}

/// Writes `ManifestGenerator` (shape `JobManifestGenerator`) as the job asked for it.
fn manifest_generator(w: &mut Writer, spec: &JobSpec) {
    w.element("ManifestGenerator", |w| {
        w.element("S3JobManifestGenerator", |w| {
            w.text("SourceBucket", &bucket_arn(&spec.bucket));
            if let Some(output) = &spec.manifest_output {
                w.element("ManifestOutputLocation", |w| {
                    w.text("Bucket", &bucket_arn(&output.bucket));
                    w.opt_text("ManifestPrefix", output.prefix.as_deref());
                    w.text("ManifestFormat", MANIFEST_FORMAT);
                });
            }
            if spec.filter != JobFilter::default() {
                filter(w, &spec.filter);
            }
            w.text("EnableManifestOutput", bool_str(spec.manifest_output.is_some()));
        });
    });
}

/// Writes `Filter` (shape `JobManifestGeneratorFilter`): the fields that narrow the selection.
fn filter(w: &mut Writer, filter: &JobFilter) {
    w.element("Filter", |w| {
        if filter.eligible_for_replication {
            w.text("EligibleForReplication", bool_str(true));
        }
        w.opt_text("CreatedAfter", filter.created_after_ms.map(iso8601).as_deref());
        w.opt_text("CreatedBefore", filter.created_before_ms.map(iso8601).as_deref());
        w.list("ObjectReplicationStatuses", filter.statuses.iter().filter_map(status_filter_name));
        let key_lists = [
            ("MatchAnyPrefix", &filter.match_any_prefix),
            ("MatchAnySuffix", &filter.match_any_suffix),
            ("MatchAnySubstring", &filter.match_any_substring),
        ];
        if key_lists.iter().any(|(_, items)| !items.is_empty()) {
            w.element("KeyNameConstraint", |w| {
                for (name, items) in key_lists {
                    w.list(name, items.iter().map(String::as_str));
                }
            });
        }
        w.opt_text("ObjectSizeGreaterThanBytes", filter.size_greater_than.map(|n| n.to_string()).as_deref());
        w.opt_text("ObjectSizeLessThanBytes", filter.size_less_than.map(|n| n.to_string()).as_deref());
        w.list("MatchAnyStorageClass", filter.storage_classes.iter().map(String::as_str));
    });
}

/// The ARN of bucket `name`.
fn bucket_arn(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

/// A `boolean` value.
fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Milliseconds since the epoch as an ISO 8601 UTC timestamp with milliseconds
/// (`2026-12-07T09:12:31.123Z`). Out of the representable range (±9999 years): the epoch.
fn iso8601(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Builds a response document, text escaped.
struct Writer {
    /// The document so far.
    out: String,
}

impl Writer {
    /// A document: the XML declaration and the root element `root` in [`NAMESPACE`], its content
    /// written by `content`.
    fn document(root: &str, content: impl FnOnce(&mut Self)) -> String {
        let mut w = Self { out: String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#) };
        for part in ["<", root, r#" xmlns=""#, NAMESPACE, r#"">"#] {
            w.out.push_str(part);
        }
        content(&mut w);
        w.end(root);
        w.out
    }

    /// Element `name`, its content written by `content`.
    fn element(&mut self, name: &str, content: impl FnOnce(&mut Self)) {
        self.start(name);
        content(self);
        self.end(name);
    }

    /// Empty element `name`.
    fn empty(&mut self, name: &str) {
        for part in ["<", name, "/>"] {
            self.out.push_str(part);
        }
    }

    /// Element `name` holding `value`.
    fn text(&mut self, name: &str, value: &str) {
        self.start(name);
        self.out.push_str(&escape(value));
        self.end(name);
    }

    /// Element `name` holding `value`, if any.
    fn opt_text(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    /// Wrapped list `name`, one `<member>` per item; nothing when there is no item.
    fn list<'a>(&mut self, name: &str, items: impl Iterator<Item = &'a str>) {
        let mut items = items.peekable();
        if items.peek().is_some() {
            self.element(name, |w| items.for_each(|item| w.text(MEMBER, item)));
        }
    }

    /// Start tag of `name`.
    fn start(&mut self, name: &str) {
        for part in ["<", name, ">"] {
            self.out.push_str(part);
        }
    }

    /// End tag of `name`.
    fn end(&mut self, name: &str) {
        for part in ["</", name, ">"] {
            self.out.push_str(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    /// A `CreateJobRequest` exactly as botocore serializes it (every filter field set).
    const BOTOCORE_BODY: &str = concat!(
        r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">"#,
        "<ConfirmationRequired>true</ConfirmationRequired><Operation><S3ReplicateObject /></Operation>",
        "<Report><Bucket>arn:aws:s3:::reports</Bucket><Format>Report_CSV_20180820</Format><Enabled>true</Enabled>",
        "<Prefix>rep</Prefix><ReportScope>FailedTasksOnly</ReportScope></Report>",
        "<ClientRequestToken>tok-1</ClientRequestToken><Description>d &lt;&amp;&gt;</Description>",
        "<Priority>10</Priority><RoleArn>arn:aws:iam::123456789012:role/batch</RoleArn>",
        "<Tags><member><Key>k</Key><Value>v</Value></member></Tags>",
        "<ManifestGenerator><S3JobManifestGenerator><ExpectedBucketOwner>123456789012</ExpectedBucketOwner>",
        "<SourceBucket>arn:aws:s3:::src</SourceBucket><EnableManifestOutput>true</EnableManifestOutput>",
        "<ManifestOutputLocation><Bucket>arn:aws:s3:::manifests</Bucket><ManifestPrefix>mp</ManifestPrefix>",
        "<ManifestFormat>S3InventoryReport_CSV_20211130</ManifestFormat><ManifestEncryption><SSE-S3 />",
        "</ManifestEncryption></ManifestOutputLocation>",
        "<Filter><EligibleForReplication>true</EligibleForReplication>",
        "<CreatedAfter>2026-12-07T09:00:00Z</CreatedAfter><CreatedBefore>2026-12-08T09:00:00.500000Z</CreatedBefore>",
        "<ObjectReplicationStatuses><member>NONE</member><member>FAILED</member></ObjectReplicationStatuses>",
        "<KeyNameConstraint><MatchAnyPrefix><member>a/</member><member>b/</member></MatchAnyPrefix>",
        "<MatchAnySuffix><member>.jpg</member></MatchAnySuffix><MatchAnySubstring><member>x</member>",
        "</MatchAnySubstring></KeyNameConstraint>",
        "<ObjectSizeGreaterThanBytes>10</ObjectSizeGreaterThanBytes><ObjectSizeLessThanBytes>1000</ObjectSizeLessThanBytes>",
        "<MatchAnyStorageClass><member>STANDARD</member><member>GLACIER</member></MatchAnyStorageClass>",
        "<MatchAnyObjectEncryption><ObjectEncryption><SSE-S3 /></ObjectEncryption></MatchAnyObjectEncryption>",
        "</Filter></S3JobManifestGenerator></ManifestGenerator></CreateJobRequest>",
    );

    /// The smallest valid request: no report, no manifest output, no filter.
    const MINIMAL: &str = concat!(
        r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">"#,
        "<Operation><S3ReplicateObject/></Operation><Report><Enabled>false</Enabled></Report>",
        "<ClientRequestToken>tok</ClientRequestToken><Priority>0</Priority>",
        "<RoleArn>arn:aws:iam::123456789012:role/r</RoleArn>",
        "<ManifestGenerator><S3JobManifestGenerator><SourceBucket>arn:aws:s3:::src</SourceBucket>",
        "<EnableManifestOutput>false</EnableManifestOutput></S3JobManifestGenerator></ManifestGenerator>",
        "</CreateJobRequest>",
    );

    fn botocore_spec() -> JobSpec {
        JobSpec {
            account_id: ACCOUNT.into(),
            bucket: "src".into(),
            manifest: None,
            filter: JobFilter {
                eligible_for_replication: true,
                created_after_ms: Some(1_796_634_000_000),
                created_before_ms: Some(1_796_720_400_500),
                statuses: vec![ReplicationStatus::None, ReplicationStatus::Failed],
                match_any_prefix: vec!["a/".into(), "b/".into()],
                match_any_suffix: vec![".jpg".into()],
                match_any_substring: vec!["x".into()],
                size_greater_than: Some(10),
                size_less_than: Some(1000),
                storage_classes: vec!["STANDARD".into(), "GLACIER".into()],
            },
            report: Some(JobReportSpec { bucket: "reports".into(), prefix: Some("rep".into()), failed_only: true }),
            manifest_output: Some(ManifestOutput { bucket: "manifests".into(), prefix: Some("mp".into()) }),
            priority: 10,
            role_arn: "arn:aws:iam::123456789012:role/batch".into(),
            description: Some("d <&>".into()),
            confirmation_required: true,
            client_token: "tok-1".into(),
            tags: vec![("k".into(), "v".into())],
        }
    }

    fn minimal_spec() -> JobSpec {
        JobSpec {
            account_id: ACCOUNT.into(),
            bucket: "src".into(),
            manifest: None,
            filter: JobFilter::default(),
            report: None,
            manifest_output: None,
            priority: 0,
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            description: None,
            confirmation_required: false,
            client_token: "tok".into(),
            tags: Vec::new(),
        }
    }

    fn record(spec: JobSpec) -> JobRecord {
        JobRecord {
            seq: 7,
            id: "5b1b6f4e-8a3c-4a5e-9c1d-2f8e7a6b5c4d".into(),
            priority: spec.priority,
            tags: spec.tags.clone(),
            spec,
            status: JobStatus::Complete,
            status_update_reason: Some("confirmed <by> ops".into()),
            failure_reasons: vec![("ManifestTooLarge".into(), "too many & more".into())],
            created_ms: 1_796_634_751_123,
            terminated_ms: Some(1_796_637_600_000),
            suspended_ms: None,
            active_since_ms: Some(1_796_634_600_000),
            total_tasks: 10,
            succeeded: 8,
            failed: 2,
            scan_after: None,
            manifest_offset: 0,
            queued_upto: 10,
            settled_upto: 10,
            report_keys: Vec::new(),
        }
    }

    /// `MINIMAL` with its first `from` replaced by `to`.
    fn edited(from: &str, to: &str) -> String {
        assert!(MINIMAL.contains(from), "{from} not in the minimal request");
        MINIMAL.replacen(from, to, 1)
    }

    fn parse(body: &str) -> Result<JobSpec, ControlError> {
        parse_create_job(body.as_bytes(), ACCOUNT)
    }

    #[track_caller]
    fn assert_error(body: &str, code: &str, message_part: &str) {
        let err = parse(body).expect_err("the request must be refused");
        assert_eq!(err.code, code, "{err}");
        assert!(err.message.contains(message_part), "{err:?} does not mention {message_part:?}");
    }

    #[track_caller]
    fn at<'a>(element: &'a Element, path: &str) -> &'a Element {
        path.split('/').fold(element, |element, name| {
            element.child(name).unwrap().unwrap_or_else(|| panic!("no {name} in {}", element.name))
        })
    }

    #[track_caller]
    fn text_at<'a>(element: &'a Element, path: &str) -> &'a str {
        &at(element, path).text
    }

    fn names(element: &Element) -> Vec<&str> {
        element.children.iter().map(|c| c.name.as_str()).collect()
    }

    fn members(element: &Element) -> Vec<&str> {
        member_texts(Some(element)).collect()
    }

    /// Parses a rendered response: declaration first, root in the API's namespace.
    fn reparse(document: &str, root: &str) -> Element {
        let head = format!(r#"<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NAMESPACE}">"#);
        assert!(document.starts_with(&head), "{document}");
        let element = Element::parse(document.as_bytes()).unwrap();
        assert_eq!(element.name, root);
        element
    }

    /// The `<name>…</name>` part of `document`.
    fn fragment<'a>(document: &'a str, name: &str) -> &'a str {
        let start = document.find(&format!("<{name}>")).unwrap();
        let end_tag = format!("</{name}>");
        let end = document[start..].find(&end_tag).unwrap() + start + end_tag.len();
        &document[start..end]
    }

    #[test]
    fn parses_botocore_request() {
        assert_eq!(parse(BOTOCORE_BODY).unwrap(), botocore_spec());
    }

    #[test]
    fn parses_minimal_request_with_defaults() {
        assert_eq!(parse(MINIMAL).unwrap(), minimal_spec());
    }

    #[test]
    fn accepts_declaration_whitespace_comments_and_prefixes() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- job -->\n<c:CreateJobRequest xmlns:c=\"{NAMESPACE}\">\n  \
             <c:Operation>\n    <c:S3ReplicateObject></c:S3ReplicateObject>\n  </c:Operation>\n  \
             <c:Report><c:Enabled> true </c:Enabled><c:Bucket>arn:aws:s3:::reports</c:Bucket>\
             <c:Format>Report_CSV_20180820</c:Format></c:Report>\n  \
             <c:ClientRequestToken><![CDATA[t<1>]]></c:ClientRequestToken>\n  <c:Priority> 3 </c:Priority>\n  \
             <c:RoleArn>arn:aws:iam::123456789012:role/r</c:RoleArn>\n  <c:ManifestGenerator>\n    \
             <c:S3JobManifestGenerator><c:SourceBucket>arn:aws:s3:::src</c:SourceBucket>\
             <c:EnableManifestOutput>true</c:EnableManifestOutput>\
             <c:ManifestOutputLocation><c:Bucket>arn:aws:s3:::out</c:Bucket></c:ManifestOutputLocation>\
             <c:Filter><c:CreatedAfter>2026-12-07T10:00:00+01:00</c:CreatedAfter></c:Filter>\
             </c:S3JobManifestGenerator>\n  </c:ManifestGenerator>\n</c:CreateJobRequest>\n"
        );
        let spec = parse(&body).unwrap();
        assert_eq!(spec.client_token, "t<1>");
        assert_eq!(spec.priority, 3);
        assert_eq!(spec.report, Some(JobReportSpec { bucket: "reports".into(), prefix: None, failed_only: false }));
        assert_eq!(spec.manifest_output, Some(ManifestOutput { bucket: "out".into(), prefix: None }));
        assert_eq!(spec.filter, JobFilter { created_after_ms: Some(1_796_634_000_000), ..JobFilter::default() });
    }

    #[test]
    fn refuses_malformed_bodies() {
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("not XML", "job please".into()),
            ("unclosed", MINIMAL.replace("</CreateJobRequest>", "")),
            ("mismatched end", edited("</Priority>", "</Priorty>")),
            ("two roots", format!("{MINIMAL}<CreateJobRequest/>")),
            ("text after root", format!("{MINIMAL}trailing")),
            ("wrong root", MINIMAL.replace("CreateJobRequest", "CreateJobResult")),
            ("doctype", format!("<!DOCTYPE x [<!ENTITY e \"v\">]>{MINIMAL}")),
            ("unknown entity", edited("tok<", "tok&e;<")),
            ("bad char ref", edited("tok<", "tok&#0;<")),
            ("boolean", edited("<Enabled>false", "<Enabled>no")),
            ("integer", edited("<Priority>0", "<Priority>high")),
            (
                "size",
                edited(
                    "</S3JobManifestGenerator>",
                    "<Filter><ObjectSizeLessThanBytes>1k</ObjectSizeLessThanBytes></Filter></S3JobManifestGenerator>",
                ),
            ),
            (
                "timestamp",
                edited(
                    "</S3JobManifestGenerator>",
                    "<Filter><CreatedBefore>yesterday</CreatedBefore></Filter></S3JobManifestGenerator>",
                ),
            ),
            ("duplicate", edited("<Priority>0</Priority>", "<Priority>0</Priority><Priority>1</Priority>")),
            (
                "too deep",
                edited(
                    "<Priority>",
                    &format!("<Tags>{}{}</Tags><Priority>", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH)),
                ),
            ),
        ];
        for (what, body) in &cases {
            let err = parse(body).expect_err(what);
            assert_eq!(err.code, MALFORMED_XML, "{what}: {err}");
        }
        let err = parse_create_job(b"<CreateJobRequest>\xff</CreateJobRequest>", ACCOUNT).unwrap_err();
        assert_eq!(err.code, MALFORMED_XML);
    }

    #[test]
    fn refuses_other_operations() {
        let only = "only S3ReplicateObject (batch replication) is supported";
        for operation in [
            "<S3PutObjectCopy><TargetResource>arn:aws:s3:::b</TargetResource></S3PutObjectCopy>",
            "<LambdaInvoke><FunctionArn>arn:aws:lambda:us-east-1:123456789012:function:f</FunctionArn></LambdaInvoke>",
            "<S3PutObjectTagging/>",
            "",
            "<S3ReplicateObject/><S3PutObjectAcl/>",
        ] {
            assert_error(&edited("<S3ReplicateObject/>", operation), INVALID_REQUEST, only);
        }
        assert_error(&edited("<S3ReplicateObject/>", "<S3PutObjectCopy/>"), INVALID_REQUEST, "S3PutObjectCopy");
        assert_error(&edited("<Operation><S3ReplicateObject/></Operation>", ""), INVALID_REQUEST, "Operation");
    }

    #[test]
    fn report_rules() {
        let enabled =
            |inner: &str| edited("<Report><Enabled>false</Enabled></Report>", &format!("<Report>{inner}</Report>"));
        let bucket = "<Bucket>arn:aws:s3:::reports</Bucket>";
        let format = "<Format>Report_CSV_20180820</Format>";
        assert_error(&edited("<Report><Enabled>false</Enabled></Report>", ""), INVALID_REQUEST, "Report");
        assert_error(&enabled(bucket), INVALID_REQUEST, "Enabled");
        assert_error(&enabled(&format!("<Enabled>true</Enabled>{format}")), INVALID_REQUEST, "Bucket");
        assert_error(&enabled(&format!("<Enabled>true</Enabled>{bucket}")), INVALID_REQUEST, "Format");
        assert_error(
            &enabled(&format!("<Enabled>true</Enabled>{bucket}<Format>Report_JSON</Format>")),
            INVALID_REQUEST,
            "Report_JSON",
        );
        assert_error(
            &enabled(&format!("<Enabled>true</Enabled>{bucket}{format}<ReportScope>SomeTasks</ReportScope>")),
            INVALID_REQUEST,
            "ReportScope",
        );
        assert_error(
            &enabled(&format!("<Enabled>true</Enabled>{bucket}{format}<Prefix></Prefix>")),
            INVALID_REQUEST,
            "Prefix",
        );
        for arn in
            ["reports", "arn:aws:s3:::reports/key", "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", "arn:aws:s3:::"]
        {
            let body = enabled(&format!("<Enabled>true</Enabled><Bucket>{arn}</Bucket>{format}"));
            assert_error(&body, INVALID_REQUEST, "Report.Bucket");
        }
        let spec =
            parse(&enabled(&format!("<Enabled>true</Enabled>{bucket}{format}<ReportScope>AllTasks</ReportScope>")))
                .unwrap();
        assert_eq!(spec.report, Some(JobReportSpec { bucket: "reports".into(), prefix: None, failed_only: false }));
        // Disabled: the other fields do not matter.
        let spec = parse(&enabled("<Enabled>false</Enabled><Format>whatever</Format>")).unwrap();
        assert_eq!(spec.report, None);
    }

    #[test]
    fn manifest_rules() {
        let generator = fragment(MINIMAL, "ManifestGenerator");
        let manifest = "<Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format><Fields><member>Bucket\
                        </member><member>Key</member><member>VersionId</member></Fields></Spec><Location>\
                        <ObjectArn>arn:aws:s3:::mb1/dir/m.csv</ObjectArn><ETag>\"e1\"</ETag></Location></Manifest>";
        // A CSV manifest: its location, ETag (unquoted) and whether rows carry version ids.
        let spec = parse(&edited(generator, manifest)).unwrap();
        let expected = CsvManifest {
            bucket: "mb1".into(),
            key: "dir/m.csv".into(),
            version_id: None,
            etag: "e1".into(),
            with_version_ids: true,
        };
        assert_eq!((spec.manifest.as_ref(), spec.bucket.as_str()), (Some(&expected), ""));
        let two_fields = manifest.replace("<member>VersionId</member>", "");
        assert!(!parse(&edited(generator, &two_fields)).unwrap().manifest.unwrap().with_version_ids);
        let versioned = manifest.replace("</ObjectArn>", "</ObjectArn><ObjectVersionId>v1</ObjectVersionId>");
        assert_eq!(parse(&edited(generator, &versioned)).unwrap().manifest.unwrap().version_id.as_deref(), Some("v1"));
        // DescribeJob echoes it.
        let described = describe_job_at(&record(spec), "us-east-1", 0);
        assert!(described.contains("<ObjectArn>arn:aws:s3:::mb1/dir/m.csv</ObjectArn>"), "{described}");
        assert!(!described.contains("ManifestGenerator"), "{described}");
        let inventory = manifest.replace("S3BatchOperations_CSV_20180820", "S3InventoryReport_CSV_20161130");
        assert_error(&edited(generator, &inventory), NOT_IMPLEMENTED, "S3InventoryReport_CSV_20161130");
        let keys_only = manifest.replace("<member>Bucket</member>", "");
        assert_error(&edited(generator, &keys_only), INVALID_REQUEST, "Fields");
        let object_arn = manifest.replace("arn:aws:s3:::mb1/dir/m.csv", "arn:aws:s3:::mb1");
        assert_error(&edited(generator, &object_arn), INVALID_REQUEST, "ObjectArn");
        let no_etag = manifest.replace("<ETag>\"e1\"</ETag>", "");
        assert_error(&edited(generator, &no_etag), INVALID_REQUEST, "ETag");
        assert_error(&edited(generator, &format!("{manifest}{generator}")), INVALID_REQUEST, "not both");
        assert_error(&edited(generator, ""), INVALID_REQUEST, "ManifestGenerator");
        assert_error(&edited(generator, "<ManifestGenerator/>"), INVALID_REQUEST, "S3JobManifestGenerator");
        assert_error(&edited("<SourceBucket>arn:aws:s3:::src</SourceBucket>", ""), INVALID_REQUEST, "SourceBucket");
        assert_error(
            &edited("<SourceBucket>arn:aws:s3:::src</SourceBucket>", "<SourceBucket>src</SourceBucket>"),
            INVALID_REQUEST,
            "SourceBucket",
        );
        assert_error(
            &edited(
                "<SourceBucket>arn:aws:s3:::src</SourceBucket>",
                "<SourceBucket>arn:aws:s3:::Bad_Name</SourceBucket>",
            ),
            INVALID_REQUEST,
            "SourceBucket",
        );
        assert_error(
            &edited("<EnableManifestOutput>false</EnableManifestOutput>", ""),
            INVALID_REQUEST,
            "EnableManifestOutput",
        );
    }

    #[test]
    fn manifest_output_rules() {
        let output = |location: &str| {
            edited(
                "<EnableManifestOutput>false</EnableManifestOutput>",
                &format!("<EnableManifestOutput>true</EnableManifestOutput>{location}"),
            )
        };
        assert_error(&output(""), INVALID_REQUEST, "ManifestOutputLocation");
        assert_error(&output("<ManifestOutputLocation/>"), INVALID_REQUEST, "Bucket");
        assert_error(
            &output(
                "<ManifestOutputLocation><Bucket>arn:aws:s3:::out</Bucket><ManifestFormat>CSV</ManifestFormat></ManifestOutputLocation>",
            ),
            INVALID_REQUEST,
            "ManifestFormat",
        );
        let spec = parse(&output(
            "<ManifestOutputLocation><ExpectedManifestBucketOwner>999999999999</ExpectedManifestBucketOwner>\
             <Bucket>arn:aws:s3:::out</Bucket><ManifestEncryption><SSE-KMS><KeyId>k</KeyId></SSE-KMS></ManifestEncryption>\
             </ManifestOutputLocation>",
        ))
        .unwrap();
        assert_eq!(spec.manifest_output, Some(ManifestOutput { bucket: "out".into(), prefix: None }));
        // A location without EnableManifestOutput is not used.
        let spec = parse(&edited(
            "</S3JobManifestGenerator>",
            "<ManifestOutputLocation><Bucket>arn:aws:s3:::out</Bucket></ManifestOutputLocation></S3JobManifestGenerator>",
        ))
        .unwrap();
        assert_eq!(spec.manifest_output, None);
    }

    #[test]
    fn filter_rules() {
        let with_filter = |filter: &str| {
            edited("</S3JobManifestGenerator>", &format!("<Filter>{filter}</Filter></S3JobManifestGenerator>"))
        };
        for status in ["PENDING", "none", "REPLICA_FAILED"] {
            let body = with_filter(&format!(
                "<ObjectReplicationStatuses><member>{status}</member></ObjectReplicationStatuses>"
            ));
            assert_error(&body, INVALID_REQUEST, status);
        }
        assert_error(
            &with_filter("<ObjectSizeGreaterThanBytes>-1</ObjectSizeGreaterThanBytes>"),
            INVALID_REQUEST,
            "ObjectSizeGreaterThanBytes",
        );
        assert_error(
            &with_filter("<KeyNameConstraint><MatchAnySuffix><member></member></MatchAnySuffix></KeyNameConstraint>"),
            INVALID_REQUEST,
            "MatchAnySuffix",
        );
        let spec = parse(&with_filter(
            "<ObjectReplicationStatuses><member>COMPLETED</member><member>REPLICA</member></ObjectReplicationStatuses>\
             <ObjectSizeGreaterThanBytes>0</ObjectSizeGreaterThanBytes><CreatedBefore>2026-12-07T09:12:31.123456789Z</CreatedBefore>",
        ))
        .unwrap();
        let expected = JobFilter {
            statuses: vec![ReplicationStatus::Completed, ReplicationStatus::Replica],
            size_greater_than: Some(0),
            created_before_ms: Some(1_796_634_751_123),
            ..JobFilter::default()
        };
        assert_eq!(spec.filter, expected);
        assert_eq!(parse(&with_filter("")).unwrap().filter, JobFilter::default());
    }

    #[test]
    fn field_limits() {
        assert_error(
            &edited("<ClientRequestToken>tok</ClientRequestToken>", ""),
            INVALID_REQUEST,
            "ClientRequestToken",
        );
        let long = "t".repeat(65);
        assert_error(&edited(">tok<", &format!(">{long}<")), INVALID_REQUEST, "ClientRequestToken");
        let limit = "é".repeat(64);
        assert_eq!(parse(&edited(">tok<", &format!(">{limit}<"))).unwrap().client_token, limit);
        assert_error(&edited("<Priority>0</Priority>", ""), INVALID_REQUEST, "Priority");
        for priority in ["-1", "2147483648"] {
            assert_error(&edited("<Priority>0", &format!("<Priority>{priority}")), INVALID_REQUEST, "Priority");
        }
        assert_eq!(parse(&edited("<Priority>0", "<Priority>2147483647")).unwrap().priority, i32::MAX);
        assert_error(&edited("<RoleArn>arn:aws:iam::123456789012:role/r</RoleArn>", ""), INVALID_REQUEST, "RoleArn");
        let description = |d: &str| edited("<Priority>", &format!("<Description>{d}</Description><Priority>"));
        assert_error(&description(&"d".repeat(257)), INVALID_REQUEST, "Description");
        assert_error(&description(""), INVALID_REQUEST, "Description");
        assert_eq!(parse(&description(&"d".repeat(256))).unwrap().description, Some("d".repeat(256)));
        // ConfirmationRequired=false is the default; tags are kept in order, a missing value
        // is empty.
        let body = edited(
            "<Priority>",
            "<ConfirmationRequired>false</ConfirmationRequired><Tags><member><Key>k</Key><Value>v</Value></member>\
             <member><Key>team</Key></member></Tags><Priority>",
        );
        let tags = vec![("k".to_owned(), "v".to_owned()), ("team".to_owned(), String::new())];
        assert_eq!(parse(&body).unwrap(), JobSpec { tags, ..minimal_spec() });
        assert_error(
            &edited("<Priority>", "<Tags><member><Value>v</Value></member></Tags><Priority>"),
            INVALID_REQUEST,
            "Key",
        );
    }

    /// `PutJobTaggingRequest` bodies as botocore writes them, and the `GetJobTagging` result.
    #[test]
    fn job_tagging_bodies() {
        let body = format!(
            "<PutJobTaggingRequest xmlns=\"{NAMESPACE}\"><Tags><member><Key>a &amp; b</Key><Value>1</Value></member>\
             <member><Key>c</Key><Value></Value></member></Tags></PutJobTaggingRequest>"
        );
        let tags = parse_put_job_tagging(body.as_bytes()).unwrap();
        assert_eq!(tags, vec![("a & b".to_owned(), "1".to_owned()), ("c".to_owned(), String::new())]);
        let empty = format!("<PutJobTaggingRequest xmlns=\"{NAMESPACE}\"><Tags/></PutJobTaggingRequest>");
        assert_eq!(parse_put_job_tagging(empty.as_bytes()).unwrap(), Vec::new());
        let wrong_root = parse_put_job_tagging(b"<Tagging><Tags/></Tagging>").unwrap_err();
        assert_eq!(wrong_root.code, MALFORMED_XML);
        let no_tags = parse_put_job_tagging(b"<PutJobTaggingRequest/>").unwrap_err();
        assert_eq!(no_tags.code, INVALID_REQUEST);

        let mut job = record(minimal_spec());
        job.tags = tags;
        let xml = render_get_job_tagging(&job);
        assert!(xml.contains(
            "<Tags><member><Key>a &amp; b</Key><Value>1</Value></member><member><Key>c</Key><Value></Value></member></Tags>"
        ), "{xml}");
        assert!(xml.starts_with("<?xml") && xml.contains("<GetJobTaggingResult"), "{xml}");
        assert!(render_empty("PutJobTaggingResult").contains("<PutJobTaggingResult"));
    }

    #[test]
    fn bucket_arns() {
        assert_eq!(bucket_from_arn("f", "arn:aws:s3:::my.bucket-1").unwrap(), "my.bucket-1");
        assert_eq!(bucket_from_arn("f", "arn:aws-cn:s3:::b12").unwrap(), "b12");
        for arn in [
            "",
            "b12",
            "arn::s3:::b12",
            "arn:aws:s3::123456789012:b12",
            "arn:aws:s3express:::b12",
            "arn:aws:s3:::b12/k",
            "arn:aws:s3:::ab",
        ] {
            let err = bucket_from_arn("f", arn).unwrap_err();
            assert_eq!(err.code, INVALID_REQUEST, "{arn}");
        }
    }

    #[test]
    fn timestamps() {
        let element = |text: &str| Element { name: "CreatedAfter".into(), text: text.into(), children: Vec::new() };
        for (text, ms) in [
            ("2026-12-07T09:00:00Z", 1_796_634_000_000),
            ("2026-12-07T09:12:31.123Z", 1_796_634_751_123),
            ("2026-12-07T09:12:31.1239Z", 1_796_634_751_123),
            ("2026-12-07T10:12:31.123+01:00", 1_796_634_751_123),
            ("1969-12-31T23:59:59.999Z", -1),
        ] {
            assert_eq!(parse_time_ms(&element(text)).unwrap(), ms, "{text}");
        }
        for text in ["2026-12-07", "2026-12-07T09:00:00", "1796634000", ""] {
            assert_eq!(parse_time_ms(&element(text)).unwrap_err().code, MALFORMED_XML, "{text}");
        }
        assert_eq!(iso8601(1_796_634_751_123), "2026-12-07T09:12:31.123Z");
        assert_eq!(iso8601(1_796_634_000_000), "2026-12-07T09:00:00.000Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(i64::MAX), "1970-01-01T00:00:00.000Z");
        for ms in [0, 1_796_634_751_123, -86_400_001] {
            assert_eq!(parse_time_ms(&element(&iso8601(ms))).unwrap(), ms);
        }
    }

    #[test]
    fn element_tree() {
        let root = Element::parse(
            b"<?xml version=\"1.0\"?><r><a>x &amp; &#60;&#x3e; <![CDATA[<c>]]></a><b/><a2 attr=\"v\">\n</a2></r>",
        )
        .unwrap();
        assert_eq!(names(&root), ["a", "b", "a2"]);
        assert_eq!(text_at(&root, "a"), "x & <> <c>");
        assert_eq!(text_at(&root, "b"), "");
        assert_eq!(root.child("missing").unwrap().map(|e| e.name.as_str()), None);
        assert_eq!(root.required("missing").unwrap_err().code, INVALID_REQUEST);
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(Element::parse(deep.as_bytes()).is_ok());
    }

    #[test]
    fn renders_create_job() {
        assert_eq!(
            render_create_job("job-1&"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><CreateJobResult xmlns="{NAMESPACE}"><JobId>job-1&amp;</JobId></CreateJobResult>"#
            )
        );
    }

    #[test]
    fn renders_describe_job() {
        let job = record(botocore_spec());
        let document = render_describe_job(&job, "eu-west-1");
        let root = reparse(&document, "DescribeJobResult");
        assert_eq!(names(&root), ["Job"]);
        let d = at(&root, "Job");
        assert_eq!(
            names(d),
            [
                "JobId",
                "ConfirmationRequired",
                "Description",
                "JobArn",
                "Status",
                "Operation",
                "Priority",
                "ProgressSummary",
                "StatusUpdateReason",
                "FailureReasons",
                "Report",
                "CreationTime",
                "TerminationDate",
                "RoleArn",
                "ManifestGenerator",
            ]
        );
        assert_eq!(text_at(d, "JobId"), job.id);
        assert_eq!(text_at(d, "ConfirmationRequired"), "true");
        assert_eq!(text_at(d, "Description"), "d <&>");
        assert_eq!(text_at(d, "JobArn"), format!("arn:aws:s3:eu-west-1:123456789012:job/{}", job.id));
        assert_eq!(text_at(d, "Status"), "Complete");
        assert_eq!(names(at(d, "Operation")), ["S3ReplicateObject"]);
        assert_eq!(text_at(d, "Priority"), "10");
        assert_eq!(text_at(d, "ProgressSummary/TotalNumberOfTasks"), "10");
        assert_eq!(text_at(d, "ProgressSummary/NumberOfTasksSucceeded"), "8");
        assert_eq!(text_at(d, "ProgressSummary/NumberOfTasksFailed"), "2");
        assert_eq!(text_at(d, "ProgressSummary/Timers/ElapsedTimeInActiveSeconds"), "3000");
        assert_eq!(text_at(d, "StatusUpdateReason"), "confirmed <by> ops");
        let failures = at(d, "FailureReasons");
        assert_eq!(names(failures), ["member"]);
        assert_eq!(text_at(failures, "member/FailureCode"), "ManifestTooLarge");
        assert_eq!(text_at(failures, "member/FailureReason"), "too many & more");
        let report = at(d, "Report");
        assert_eq!(names(report), ["Bucket", "Format", "Enabled", "Prefix", "ReportScope"]);
        assert_eq!(text_at(report, "Bucket"), "arn:aws:s3:::reports");
        assert_eq!(text_at(report, "Format"), "Report_CSV_20180820");
        assert_eq!(text_at(report, "Enabled"), "true");
        assert_eq!(text_at(report, "Prefix"), "rep");
        assert_eq!(text_at(report, "ReportScope"), "FailedTasksOnly");
        assert_eq!(text_at(d, "CreationTime"), "2026-12-07T09:12:31.123Z");
        assert_eq!(text_at(d, "TerminationDate"), "2026-12-07T10:00:00.000Z");
        assert_eq!(text_at(d, "RoleArn"), "arn:aws:iam::123456789012:role/batch");
        let s3 = at(d, "ManifestGenerator/S3JobManifestGenerator");
        assert_eq!(names(s3), ["SourceBucket", "ManifestOutputLocation", "Filter", "EnableManifestOutput"]);
        assert_eq!(text_at(s3, "SourceBucket"), "arn:aws:s3:::src");
        assert_eq!(text_at(s3, "EnableManifestOutput"), "true");
        assert_eq!(names(at(s3, "ManifestOutputLocation")), ["Bucket", "ManifestPrefix", "ManifestFormat"]);
        assert_eq!(text_at(s3, "ManifestOutputLocation/Bucket"), "arn:aws:s3:::manifests");
        assert_eq!(text_at(s3, "ManifestOutputLocation/ManifestPrefix"), "mp");
        assert_eq!(text_at(s3, "ManifestOutputLocation/ManifestFormat"), "S3InventoryReport_CSV_20211130");
        let f = at(s3, "Filter");
        assert_eq!(
            names(f),
            [
                "EligibleForReplication",
                "CreatedAfter",
                "CreatedBefore",
                "ObjectReplicationStatuses",
                "KeyNameConstraint",
                "ObjectSizeGreaterThanBytes",
                "ObjectSizeLessThanBytes",
                "MatchAnyStorageClass",
            ]
        );
        assert_eq!(text_at(f, "EligibleForReplication"), "true");
        assert_eq!(text_at(f, "CreatedAfter"), "2026-12-07T09:00:00.000Z");
        assert_eq!(text_at(f, "CreatedBefore"), "2026-12-08T09:00:00.500Z");
        assert_eq!(members(at(f, "ObjectReplicationStatuses")), ["NONE", "FAILED"]);
        assert_eq!(members(at(f, "KeyNameConstraint/MatchAnyPrefix")), ["a/", "b/"]);
        assert_eq!(members(at(f, "KeyNameConstraint/MatchAnySuffix")), [".jpg"]);
        assert_eq!(members(at(f, "KeyNameConstraint/MatchAnySubstring")), ["x"]);
        assert_eq!(text_at(f, "ObjectSizeGreaterThanBytes"), "10");
        assert_eq!(text_at(f, "ObjectSizeLessThanBytes"), "1000");
        assert_eq!(members(at(f, "MatchAnyStorageClass")), ["STANDARD", "GLACIER"]);
    }

    #[test]
    fn renders_describe_job_of_a_suspended_job() {
        let job = JobRecord {
            status: JobStatus::Suspended,
            status_update_reason: None,
            failure_reasons: Vec::new(),
            terminated_ms: None,
            suspended_ms: Some(1_796_634_751_123),
            active_since_ms: None,
            ..record(minimal_spec())
        };
        let root = reparse(&describe_job_at(&job, "us-east-1", 1_796_637_600_000), "DescribeJobResult");
        let d = at(&root, "Job");
        assert_eq!(
            names(d),
            [
                "JobId",
                "ConfirmationRequired",
                "JobArn",
                "Status",
                "Operation",
                "Priority",
                "ProgressSummary",
                "Report",
                "CreationTime",
                "RoleArn",
                "SuspendedDate",
                "SuspendedCause",
                "ManifestGenerator",
            ]
        );
        assert_eq!(text_at(d, "ConfirmationRequired"), "false");
        assert_eq!(names(at(d, "Report")), ["Enabled"]);
        assert_eq!(text_at(d, "Report/Enabled"), "false");
        assert_eq!(text_at(d, "ProgressSummary/Timers/ElapsedTimeInActiveSeconds"), "0");
        assert_eq!(text_at(d, "SuspendedDate"), "2026-12-07T09:12:31.123Z");
        assert_eq!(text_at(d, "SuspendedCause"), "AwaitingConfirmation");
        let s3 = at(d, "ManifestGenerator/S3JobManifestGenerator");
        assert_eq!(names(s3), ["SourceBucket", "EnableManifestOutput"]);
        assert_eq!(text_at(s3, "EnableManifestOutput"), "false");
        // Once confirmed, the date stays but there is no cause any more.
        let ready = JobRecord { status: JobStatus::Ready, ..job };
        let root = reparse(&render_describe_job(&ready, "us-east-1"), "DescribeJobResult");
        assert!(at(&root, "Job").child("SuspendedDate").unwrap().is_some());
        assert!(at(&root, "Job").child("SuspendedCause").unwrap().is_none());
    }

    #[test]
    fn described_job_round_trips_into_create_job() {
        // What DescribeJob echoes (Report, ManifestGenerator) is a valid CreateJobRequest part.
        for spec in [botocore_spec(), minimal_spec()] {
            let document = render_describe_job(&record(spec.clone()), "us-east-1");
            let body = edited(fragment(MINIMAL, "ManifestGenerator"), fragment(&document, "ManifestGenerator"));
            let body = body.replacen(fragment(MINIMAL, "Report"), fragment(&document, "Report"), 1);
            let expected = JobSpec {
                priority: 0,
                role_arn: minimal_spec().role_arn,
                description: None,
                confirmation_required: false,
                client_token: minimal_spec().client_token,
                tags: Vec::new(),
                ..spec
            };
            assert_eq!(parse(&body).unwrap(), expected);
        }
    }

    #[test]
    fn active_time() {
        let job = record(minimal_spec());
        assert_eq!(active_seconds(&job, 0), 3000);
        let running = JobRecord { terminated_ms: None, ..job.clone() };
        assert_eq!(active_seconds(&running, 1_796_634_600_000 + 61_999), 61);
        assert_eq!(active_seconds(&running, 0), 0);
        let never = JobRecord { active_since_ms: None, ..job };
        assert_eq!(active_seconds(&never, 1_796_637_600_000), 0);
    }

    #[test]
    fn renders_list_jobs() {
        let first = record(botocore_spec());
        let second =
            JobRecord { id: "second".into(), status: JobStatus::Active, terminated_ms: None, ..record(minimal_spec()) };
        let document = list_jobs_at(&[first.clone(), second], Some("next+/="), 1_796_634_660_000);
        let root = reparse(&document, "ListJobsResult");
        assert_eq!(names(&root), ["NextToken", "Jobs"]);
        assert_eq!(text_at(&root, "NextToken"), "next+/=");
        let jobs = at(&root, "Jobs");
        assert_eq!(names(jobs), ["member", "member"]);
        let j = &jobs.children[0];
        assert_eq!(
            names(j),
            [
                "JobId",
                "Description",
                "Operation",
                "Priority",
                "Status",
                "CreationTime",
                "TerminationDate",
                "ProgressSummary"
            ]
        );
        assert_eq!(text_at(j, "JobId"), first.id);
        assert_eq!(text_at(j, "Description"), "d <&>");
        assert_eq!(text_at(j, "Operation"), "S3ReplicateObject");
        assert_eq!(text_at(j, "Priority"), "10");
        assert_eq!(text_at(j, "Status"), "Complete");
        assert_eq!(text_at(j, "CreationTime"), "2026-12-07T09:12:31.123Z");
        assert_eq!(text_at(j, "TerminationDate"), "2026-12-07T10:00:00.000Z");
        assert_eq!(text_at(j, "ProgressSummary/NumberOfTasksFailed"), "2");
        let j = &jobs.children[1];
        assert_eq!(names(j), ["JobId", "Operation", "Priority", "Status", "CreationTime", "ProgressSummary"]);
        assert_eq!(text_at(j, "Status"), "Active");
        assert_eq!(text_at(j, "ProgressSummary/Timers/ElapsedTimeInActiveSeconds"), "60");

        let root = reparse(&render_list_jobs(&[], None), "ListJobsResult");
        assert_eq!(names(&root), ["Jobs"]);
        assert!(at(&root, "Jobs").children.is_empty());
    }

    #[test]
    fn renders_updates() {
        let job = record(botocore_spec());
        let root = reparse(&render_update_job_status(&job), "UpdateJobStatusResult");
        assert_eq!(names(&root), ["JobId", "Status", "StatusUpdateReason"]);
        assert_eq!(text_at(&root, "JobId"), job.id);
        assert_eq!(text_at(&root, "Status"), "Complete");
        assert_eq!(text_at(&root, "StatusUpdateReason"), "confirmed <by> ops");
        let quiet = JobRecord { status_update_reason: None, status: JobStatus::Cancelled, ..job.clone() };
        let root = reparse(&render_update_job_status(&quiet), "UpdateJobStatusResult");
        assert_eq!(names(&root), ["JobId", "Status"]);
        assert_eq!(text_at(&root, "Status"), "Cancelled");

        let root = reparse(&render_update_job_priority(&job), "UpdateJobPriorityResult");
        assert_eq!(names(&root), ["JobId", "Priority"]);
        assert_eq!(text_at(&root, "Priority"), "10");
    }
}
