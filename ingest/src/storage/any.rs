//! The object store chosen at run time: [`AnyStore`] is a local directory or
//! S3, as the configuration says, behind the same [`ObjectStore`] interface.

use std::ops::Range;

use tokio::io::AsyncRead;

use bytes::Bytes;

use super::{LocalStore, ObjectBody, ObjectKey, ObjectMeta, ObjectStore, Part, S3Store, StorageResult};

/// Either store.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A local directory.
    Local(LocalStore),
    /// An S3 bucket.
    S3(S3Store),
}

impl AnyStore {
    /// `"local"` or `"s3"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::S3(_) => "s3",
        }
    }
}

impl ObjectStore for AnyStore {
    async fn put_stream<R>(&self, key: &ObjectKey, body: R) -> StorageResult<ObjectMeta>
    where
        R: AsyncRead + Unpin + Send,
    {
        match self {
            Self::Local(s) => s.put_stream(key, body).await,
            Self::S3(s) => s.put_stream(key, body).await,
        }
    }

    async fn get(&self, key: &ObjectKey, range: Option<Range<u64>>) -> StorageResult<ObjectBody> {
        match self {
            Self::Local(s) => s.get(key, range).await,
            Self::S3(s) => s.get(key, range).await,
        }
    }

    async fn head(&self, key: &ObjectKey) -> StorageResult<Option<ObjectMeta>> {
        match self {
            Self::Local(s) => s.head(key).await,
            Self::S3(s) => s.head(key).await,
        }
    }

    async fn delete(&self, key: &ObjectKey) -> StorageResult<()> {
        match self {
            Self::Local(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        match self {
            Self::Local(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }

    async fn create_multipart(&self, key: &ObjectKey) -> StorageResult<String> {
        match self {
            Self::Local(s) => s.create_multipart(key).await,
            Self::S3(s) => s.create_multipart(key).await,
        }
    }

    async fn upload_part(&self, key: &ObjectKey, upload_id: &str, number: u32, bytes: Bytes) -> StorageResult<Part> {
        match self {
            Self::Local(s) => s.upload_part(key, upload_id, number, bytes).await,
            Self::S3(s) => s.upload_part(key, upload_id, number, bytes).await,
        }
    }

    async fn complete_multipart(&self, key: &ObjectKey, upload_id: &str, parts: &[Part]) -> StorageResult<ObjectMeta> {
        match self {
            Self::Local(s) => s.complete_multipart(key, upload_id, parts).await,
            Self::S3(s) => s.complete_multipart(key, upload_id, parts).await,
        }
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StorageResult<()> {
        match self {
            Self::Local(s) => s.abort_multipart(key, upload_id).await,
            Self::S3(s) => s.abort_multipart(key, upload_id).await,
        }
    }
}
