//! Version records: what the metadata store keeps per object version or delete marker.

use serde::{Deserialize, Serialize};

use crate::{ChecksumValue, VersionId};

/// Current wall time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One entry of a key's version stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version id (`Null` or generated).
    pub version_id: VersionId,
    /// Order within the key: larger is newer. For generated ids it equals the id's stamp.
    pub stamp: u64,
    /// Last-Modified, unix milliseconds.
    pub last_modified_ms: i64,
    /// Object data or delete marker.
    pub kind: VersionKind,
    /// Replication status of this version (STS-*).
    pub replication: ReplicationStatus,
    /// The destination buckets this version was planned to when it was written, in plan
    /// order: where its replicas are, so a later metadata change goes to them (ELI-12) even
    /// once its tags no longer select them (eligibility is judged at creation, ELI-5). Empty
    /// for a version outside replication, a replica, and a version written before xregion
    /// recorded this (stored format 2 and older).
    pub replication_targets: Vec<String>,
    /// When the tags were last changed (unix ms, at the region the change was made in);
    /// `None`: they are the tags the version was written with. Replicated tag changes apply
    /// last-writer-wins on it (TWO-8), see [`VersionRecord::tags_stamp`].
    pub tags_changed_ms: Option<i64>,
}

impl VersionRecord {
    /// True if this version is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        matches!(self.kind, VersionKind::DeleteMarker)
    }

    /// The time of the current tag set: its last change, or the version's creation.
    pub fn tags_stamp(&self) -> i64 {
        self.tags_changed_ms.unwrap_or(self.last_modified_ms)
    }

    /// The object data, if this is not a delete marker.
    pub fn object(&self) -> Option<&ObjectData> {
        match &self.kind {
            VersionKind::Object(o) => Some(o),
            VersionKind::DeleteMarker => None,
        }
    }
}

/// An object version or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionKind {
    /// A version with data.
    Object(Box<ObjectData>),
    /// A delete marker: no data, no tags.
    DeleteMarker,
}

/// The Content-Type S3 gives an object uploaded without one (PutObject, CreateMultipartUpload,
/// CopyObject with `REPLACE`), and serves for it.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Data and metadata of an object version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectData {
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes: hex MD5, or `hex-N` for multipart uploads.
    pub etag: String,
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires (HTTP date as sent).
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lowercase without the prefix.
    pub user_metadata: Vec<(String, String)>,
    /// Object tags.
    pub tags: Vec<(String, String)>,
    /// Additional checksum, if one was sent or requested.
    pub checksum: Option<ChecksumValue>,
    /// Storage class (`STANDARD` unless set).
    pub storage_class: String,
    /// Where the bytes are when they live in blob files (empty for an inline or empty object).
    pub blob: BlobRef,
    /// Part sizes for multipart objects (for `partNumber` reads and `PartsCount`).
    pub part_sizes: Vec<u64>,
    /// Where the bytes are when they are stored inline in the metadata store (small objects,
    /// written in the same transaction as the version); `blob` is then empty.
    pub inline: Option<InlineRef>,
    /// How the bytes are encrypted at rest (SSE-S3 or SSE-C), if they are: every blob segment
    /// and the inline body are sealed with this version's data key. Local to the region that
    /// wrote the bytes: a replica or a copy has its own.
    pub encryption: Option<Encryption>,
    /// The parts' checksums of a multipart version uploaded with an additional checksum
    /// (base64 digests of `checksum`'s algorithm, in part order), kept after completion for
    /// `GetObjectAttributes`' part list and `partNumber` reads; empty otherwise.
    pub part_checksums: Vec<String>,
}

/// Server-side encryption of a version's bytes at rest, see `xregion-crypto`: SSE-S3
/// (`x-amz-server-side-encryption: AES256`; the data key is wrapped by a region master key) or
/// SSE-C (the data key is wrapped by the key the client sends with every request, which the
/// region never stores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// The region master key that wrapped `wrapped_key` (1, 2, …), or
    /// [`Encryption::CUSTOMER_KEY_ID`] for a customer's key (SSE-C).
    pub key_id: u32,
    /// The version's data key, wrapped by that key (nonce ‖ ciphertext ‖ tag).
    pub wrapped_key: Vec<u8>,
    /// The labels the pieces were sealed under (`xregion_crypto::DataKey::segment`), one per
    /// blob segment or one for the inline body, when they are not the pieces' own names (the
    /// blob id, `inline`): a replica of an SSE-C version stores its source's sealed bytes as
    /// they are (the region cannot open them), in pieces of its own. Empty otherwise.
    pub labels: Vec<String>,
}

impl Encryption {
    /// The `key_id` of a data key wrapped by a customer's key (`xregion_crypto::CUSTOMER_KEY_ID`;
    /// master keys count from 1, so stored records from before SSE-C never have it).
    pub const CUSTOMER_KEY_ID: u32 = 0;

    /// True for SSE-C: reading the bytes needs the customer's key.
    pub fn is_customer_key(&self) -> bool {
        self.key_id == Self::CUSTOMER_KEY_ID
    }

    /// The label piece `index` was sealed under: the recorded one, else `own` (the piece's
    /// blob id, or `inline`).
    pub fn label<'a>(&'a self, index: usize, own: &'a [u8]) -> &'a [u8] {
        self.labels.get(index).map_or(own, |l| l.as_bytes())
    }
}

impl ObjectData {
    /// True if the bytes are stored inline in the metadata store.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// The Content-Type the version has for clients and replicas: the stored one, or
    /// [`DEFAULT_CONTENT_TYPE`] for versions stored without one (before xregion stored the
    /// default at ingest).
    pub fn content_type_or_default(&self) -> &str {
        self.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE)
    }
}

/// The inline bytes of a small object: one row of the metadata store's `inline_data` table,
/// holding all `ObjectData::size` bytes. The id is assigned by the metadata writer and never
/// reused, so a row belongs to exactly one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineRef {
    /// Key of the `inline_data` row.
    pub id: u64,
}

/// Where an object's bytes live: a sequence of segments read back to back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlobRef {
    /// Segments in order; empty for an empty object.
    pub segments: Vec<BlobSegment>,
}

/// One stored blob (a file for a simple upload, one per part for multipart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSegment {
    /// Blob id understood by the blob store.
    pub id: String,
    /// Length in bytes.
    pub len: u64,
}

/// Replication status of a version (STS-*), driven by the replication outbox.
///
/// A replica keeps knowing it is a replica while a metadata change made on it is being sent
/// back by replica modification sync (TWO-4, STS-10): `ReplicaPending` and `ReplicaFailed`
/// read `PENDING` and `FAILED` on the wire, like AWS, yet are never re-replicated (ELI-13).
/// New variants go at the end: the stored encoding is the variant index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReplicationStatus {
    /// Not subject to replication: no header.
    #[default]
    None,
    /// Tasks are queued for these destinations.
    Pending,
    /// Every destination has the version.
    Completed,
    /// At least one destination failed permanently.
    Failed,
    /// This version is a replica written by replication.
    Replica,
    /// A replica whose metadata change is being synced back (STS-10).
    ReplicaPending,
    /// A replica whose metadata change could not be synced back (STS-10).
    ReplicaFailed,
}

impl ReplicationStatus {
    /// The `x-amz-replication-status` value, if any.
    pub fn header_value(&self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Pending | Self::ReplicaPending => Some("PENDING"),
            Self::Completed => Some("COMPLETED"),
            Self::Failed | Self::ReplicaFailed => Some("FAILED"),
            Self::Replica => Some("REPLICA"),
        }
    }

    /// True for a version written by replication, whatever its sync state (ELI-13).
    pub fn is_replica(&self) -> bool {
        matches!(self, Self::Replica | Self::ReplicaPending | Self::ReplicaFailed)
    }
}
