//! Object storage: where uploads, renditions, posters and storyboards live.
//!
//! [`ObjectStore`] is the interface; [`S3Store`] (any S3-compatible service,
//! through aws-sdk-s3) runs in production and [`LocalStore`] (a directory
//! under the data dir) on one machine. Both pass one contract suite
//! (`ingest/tests/storage_contract.rs`) and promise:
//!
//! - **Streaming**: [`ObjectStore::put_stream`] reads its body in bounded
//!   chunks (S3: multipart parts) and never holds a whole object in memory;
//!   [`ObjectStore::get`] returns a stream.
//! - **Atomic puts**: a reader sees the old object or the whole new one,
//!   never a partial write; when `put_stream` returns, the object is durable.
//! - **Ranges**: a ranged get returns exactly those bytes, or
//!   [`StorageError::InvalidRange`] if the range starts past the end.
//! - **Safe keys**: every key goes through [`ObjectKey::parse`], which rejects
//!   path traversal and other tricks before any I/O.

mod any;
mod key;
pub mod local;
pub mod s3;

pub use any::AnyStore;
pub use key::ObjectKey;
pub use local::LocalStore;
pub use s3::{S3Config, S3Store};

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::io::AsyncRead;

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// An opaque version tag that changes whenever the content does.
    pub etag: String,
    /// When it was last written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One uploaded part of a multipart upload, as `complete_multipart` needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    /// 1-based part number; parts are joined in this order.
    pub number: u32,
    /// The store's tag for the part.
    pub etag: String,
    /// Bytes in the part.
    pub size: u64,
}

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The answer to a get: what was asked for, and the bytes.
pub struct ObjectBody {
    /// The whole object's metadata (its full size, not the range's).
    pub meta: ObjectMeta,
    /// The byte range the stream holds.
    pub range: Range<u64>,
    /// The bytes of `range`.
    pub stream: ByteStream,
}

impl ObjectBody {
    /// Reads the whole stream into memory. For small objects and tests only.
    pub async fn collect(self) -> StorageResult<Vec<u8>> {
        use futures::TryStreamExt;
        let key = self.meta.key.clone();
        self.stream
            .try_fold(Vec::new(), |mut acc, chunk| async move {
                acc.extend_from_slice(&chunk);
                Ok(acc)
            })
            .await
            .map_err(|e| StorageError::Io {
                context: format!("reading {key}"),
                source: e,
            })
    }
}

/// Errors of either store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key is not acceptable (traversal, empty, too long…).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No object has that key.
    #[error("object {0:?} not found")]
    NotFound(String),
    /// The range starts at or past the end of the object.
    #[error("range {start}.. is outside object {key:?} of {size} bytes")]
    InvalidRange {
        /// The object.
        key: String,
        /// Where the range started.
        start: u64,
        /// The object's size.
        size: u64,
    },
    /// Local disk I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The S3 service failed or refused.
    #[error("s3: {context}: {message}")]
    S3 {
        /// What we were doing.
        context: String,
        /// The service's or client's message.
        message: String,
        /// Whether trying again may help (throttling, 5xx, network).
        retryable: bool,
    },
}

impl StorageError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { .. } => true,
            Self::S3 { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// Result of storage operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// Object storage. See the module doc for what every implementation promises.
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores the bytes read from `body` under `key`, streaming them, and
    /// returns the new object's metadata once it is durable.
    fn put_stream<R>(&self, key: &ObjectKey, body: R) -> impl Future<Output = StorageResult<ObjectMeta>> + Send
    where
        R: AsyncRead + Unpin + Send;

    /// Stores a small in-memory object.
    fn put_bytes(&self, key: &ObjectKey, bytes: &[u8]) -> impl Future<Output = StorageResult<ObjectMeta>> + Send {
        async move { self.put_stream(key, bytes).await }
    }

    /// Reads the object, or the `range` of it (clamped to its end).
    fn get(&self, key: &ObjectKey, range: Option<Range<u64>>)
    -> impl Future<Output = StorageResult<ObjectBody>> + Send;

    /// The object's metadata, or `None` if it does not exist.
    fn head(&self, key: &ObjectKey) -> impl Future<Output = StorageResult<Option<ObjectMeta>>> + Send;

    /// Deletes the object; deleting a missing object is not an error.
    fn delete(&self, key: &ObjectKey) -> impl Future<Output = StorageResult<()>> + Send;

    /// Every object whose key starts with `prefix`, sorted by key. A prefix
    /// that no valid key could start with is an [`StorageError::InvalidKey`].
    fn list(&self, prefix: &str) -> impl Future<Output = StorageResult<Vec<ObjectMeta>>> + Send;

    /// Starts a multipart upload of `key` and returns its id. The parts of a
    /// multipart upload can arrive over many requests, from any process,
    /// across restarts; nothing is visible under `key` until it completes.
    fn create_multipart(&self, key: &ObjectKey) -> impl Future<Output = StorageResult<String>> + Send;

    /// Stores part `number` (1-based). Every part but the last must be at
    /// least 5 MiB (S3's rule, enforced by S3 at completion).
    fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: u32,
        bytes: Bytes,
    ) -> impl Future<Output = StorageResult<Part>> + Send;

    /// Joins the parts, in order, into the object `key`, atomically.
    fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[Part],
    ) -> impl Future<Output = StorageResult<ObjectMeta>> + Send;

    /// Discards a multipart upload and its parts.
    fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> impl Future<Output = StorageResult<()>> + Send;

    /// Deletes every object whose key starts with `prefix` (a video's files).
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = StorageResult<usize>> + Send {
        async move {
            let objects = self.list(prefix).await?;
            for o in &objects {
                self.delete(&ObjectKey::parse(&o.key)?).await?;
            }
            Ok(objects.len())
        }
    }
}

/// Checks a listing prefix: empty, or the start of some valid key, so a
/// prefix cannot point a listing outside the store either.
pub(crate) fn validate_prefix(prefix: &str) -> StorageResult<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    ObjectKey::parse(&format!("{prefix}x"))
        .map(|_| ())
        .map_err(|e| match e {
            StorageError::InvalidKey { reason, .. } => StorageError::InvalidKey {
                key: prefix.to_string(),
                reason,
            },
            other => other,
        })
}

/// Clamps a requested range to an object of `size` bytes.
pub(crate) fn clamp_range(key: &str, range: Option<Range<u64>>, size: u64) -> StorageResult<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start >= size || r.start >= r.end => Err(StorageError::InvalidRange {
            key: key.to_string(),
            start: r.start,
            size,
        }),
        Some(r) => Ok(r.start..r.end.min(size)),
    }
}
