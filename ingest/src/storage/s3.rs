//! Object storage on any S3-compatible service, through aws-sdk-s3.
//!
//! Small bodies go up in one `PutObject`; anything larger than one part is
//! streamed as a multipart upload, one part in memory at a time, and the
//! upload is aborted if anything fails so no orphaned parts are left billed.

use std::ops::Range;

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::ReaderStream;

use bytes::Bytes;

use super::{
    ObjectBody, ObjectKey, ObjectMeta, ObjectStore, Part, StorageError, StorageResult, clamp_range, validate_prefix,
};

/// How to reach the bucket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible services; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// Region name (most S3-compatible services accept any).
    pub region: String,
    /// Bucket that holds every Reelflow object.
    pub bucket: String,
    /// Access key id; `None` uses the default AWS credential chain.
    pub access_key_id: Option<String>,
    /// Secret access key, used with `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`
    /// (needed by most self-hosted S3 servers).
    pub force_path_style: bool,
    /// Size of each multipart part in bytes, at least 5 MiB (S3's minimum).
    pub part_size_bytes: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: "reelflow".into(),
            access_key_id: None,
            secret_access_key: None,
            force_path_style: true,
            part_size_bytes: 8 * 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "****"))
            .field("force_path_style", &self.force_path_style)
            .field("part_size_bytes", &self.part_size_bytes)
            .finish()
    }
}

/// The smallest part S3 accepts (except the last one).
const MIN_PART: usize = 5 * 1024 * 1024;

/// Objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    part_size: usize,
}

fn s3_err<E, R>(context: impl Into<String>) -> impl FnOnce(SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let context = context.into();
    move |err| {
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(s) => {
                matches!(
                    s.err().code(),
                    Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
                )
            }
            _ => false,
        };
        let message = match (err.code(), err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_string(),
            _ => error_chain(&err),
        };
        StorageError::S3 {
            context,
            message,
            retryable,
        }
    }
}

/// The whole source chain of an SDK error, which alone says little.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Fills `buf` from `body` until it is full or the body ends; returns the
/// number of bytes read.
async fn fill<R: AsyncRead + Unpin>(body: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = body.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

impl S3Store {
    /// Builds a client for `config`. Does not talk to the service yet.
    pub async fn connect(config: &S3Config) -> StorageResult<Self> {
        if config.part_size_bytes < MIN_PART {
            return Err(StorageError::S3 {
                context: "configuring".into(),
                message: format!(
                    "part size {} is below S3's minimum of {MIN_PART} bytes",
                    config.part_size_bytes
                ),
                retryable: false,
            });
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "reelflow-config"));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            // Newer SDKs add CRC trailers to every request by default, which
            // several S3-compatible servers reject; send them only where the
            // API requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(Self {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
            part_size: config.part_size_bytes,
        })
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> StorageResult<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                match self.client.create_bucket().bucket(&self.bucket).send().await {
                    Ok(_) => Ok(()),
                    Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
                    Err(e) => Err(s3_err(format!("creating bucket {}", self.bucket))(e)),
                }
            }
            Err(err) => Err(s3_err(format!("checking bucket {}", self.bucket))(err)),
        }
    }

    async fn put_multipart<R: AsyncRead + Unpin + Send>(
        &self,
        key: &ObjectKey,
        first: Vec<u8>,
        body: &mut R,
    ) -> StorageResult<()> {
        let upload_id = self.create_multipart(key).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut chunk = first;
            loop {
                let number = parts.len() as u32 + 1;
                parts.push(self.upload_part(key, &upload_id, number, Bytes::from(chunk)).await?);
                let mut next = vec![0u8; self.part_size];
                let n = fill(body, &mut next).await.map_err(|e| StorageError::Io {
                    context: format!("reading the body of {key}"),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                next.truncate(n);
                chunk = next;
            }
            self.complete_multipart(key, &upload_id, &parts).await.map(|_| ())
        }
        .await;
        if result.is_err()
            && let Err(e) = self.abort_multipart(key, &upload_id).await
        {
            tracing::warn!(%key, error = %e, "could not abort a failed multipart upload");
        }
        result
    }
}

impl ObjectStore for S3Store {
    async fn put_stream<R>(&self, key: &ObjectKey, mut body: R) -> StorageResult<ObjectMeta>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut first = vec![0u8; self.part_size];
        let n = fill(&mut body, &mut first).await.map_err(|e| StorageError::Io {
            context: format!("reading the body of {key}"),
            source: e,
        })?;
        first.truncate(n);
        if n < self.part_size {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_length(n as i64)
                .body(S3Body::from(first))
                .send()
                .await
                .map_err(s3_err(format!("putting {key}")))?;
        } else {
            self.put_multipart(key, first, &mut body).await?;
        }
        self.head(key).await?.ok_or_else(|| StorageError::S3 {
            context: format!("putting {key}"),
            message: "the object is missing right after it was written".into(),
            retryable: true,
        })
    }

    async fn get(&self, key: &ObjectKey, range: Option<Range<u64>>) -> StorageResult<ObjectBody> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key.as_str());
        if let Some(r) = &range {
            if r.start >= r.end {
                let size = self
                    .head(key)
                    .await?
                    .ok_or_else(|| StorageError::NotFound(key.to_string()))?
                    .size;
                clamp_range(key.as_str(), range.clone(), size)?;
            }
            request = request.range(format!("bytes={}-{}", r.start, r.end.saturating_sub(1)));
        }
        let resp = match request.send().await {
            Ok(resp) => resp,
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NotFound")) => {
                return Err(StorageError::NotFound(key.to_string()));
            }
            Err(e)
                if e.code() == Some("InvalidRange") || e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                let size = self
                    .head(key)
                    .await?
                    .ok_or_else(|| StorageError::NotFound(key.to_string()))?
                    .size;
                return Err(StorageError::InvalidRange {
                    key: key.to_string(),
                    start: range.map(|r| r.start).unwrap_or(0),
                    size,
                });
            }
            Err(e) => return Err(s3_err(format!("getting {key}"))(e)),
        };
        let length = resp.content_length().unwrap_or(0).max(0) as u64;
        // "bytes 0-99/1234": the total after the slash is the object's size.
        let (start, size) = match resp.content_range().and_then(parse_content_range) {
            Some((start, total)) => (start, total),
            None => (0, length),
        };
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            etag: resp.e_tag().unwrap_or_default().trim_matches('"').to_string(),
            last_modified: to_chrono(resp.last_modified()),
        };
        let stream = ReaderStream::with_capacity(resp.body.into_async_read(), 64 * 1024).boxed();
        Ok(ObjectBody {
            meta,
            range: start..start + length,
            stream,
        })
    }

    async fn head(&self, key: &ObjectKey) -> StorageResult<Option<ObjectMeta>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
                etag: h.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                last_modified: to_chrono(h.last_modified()),
            })),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(s3_err(format!("head {key}"))(e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(s3_err(format!("deleting {key}")))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_err(format!("listing {prefix}")))?;
            for o in page.contents() {
                out.push(ObjectMeta {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                    last_modified: to_chrono(o.last_modified()),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn create_multipart(&self, key: &ObjectKey) -> StorageResult<String> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(s3_err(format!("starting multipart upload of {key}")))?;
        created.upload_id().map(str::to_string).ok_or_else(|| StorageError::S3 {
            context: format!("starting multipart upload of {key}"),
            message: "the service returned no upload id".into(),
            retryable: true,
        })
    }

    async fn upload_part(&self, key: &ObjectKey, upload_id: &str, number: u32, bytes: Bytes) -> StorageResult<Part> {
        let size = bytes.len() as u64;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_length(size as i64)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(s3_err(format!("uploading part {number} of {key}")))?;
        Ok(Part {
            number,
            etag: part.e_tag().unwrap_or_default().to_string(),
            size,
        })
    }

    async fn complete_multipart(&self, key: &ObjectKey, upload_id: &str, parts: &[Part]) -> StorageResult<ObjectMeta> {
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await
            .map_err(s3_err(format!("completing multipart upload of {key}")))?;
        self.head(key).await?.ok_or_else(|| StorageError::S3 {
            context: format!("completing {key}"),
            message: "the object is missing right after it was completed".into(),
            retryable: true,
        })
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StorageResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("NoSuchUpload")) => Ok(()),
            Err(e) => Err(s3_err(format!("aborting multipart upload of {key}"))(e)),
        }
    }
}

/// Parses `bytes START-END/TOTAL` into (START, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 100-199/1234"), Some((100, 1234)));
        assert_eq!(parse_content_range("bytes */1234"), None);
    }
}
