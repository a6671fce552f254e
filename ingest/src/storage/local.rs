//! Object storage in a local directory, for `reelflow up` on one machine.
//!
//! A key maps to the relative path of the same name under the root (keys are
//! checked by [`ObjectKey`], so they cannot leave it). A put streams into a
//! temporary file under `<root>/.tmp`, fsyncs it and renames it into place,
//! so readers never see a partial object and a returned put is durable.

use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use bytes::Bytes;

use super::{
    ObjectBody, ObjectKey, ObjectMeta, ObjectStore, Part, StorageError, StorageResult, clamp_range, validate_prefix,
};

/// Objects as files under a directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

impl LocalStore {
    /// Opens (creating) the store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> StorageResult<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join(".tmp")).map_err(io(format!("creating {}", root.display())))?;
        Ok(Self { root })
    }

    /// The directory objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn meta_of(key: &str, md: &std::fs::Metadata) -> ObjectMeta {
        let modified = md.modified().ok();
        let nanos = modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        ObjectMeta {
            key: key.to_string(),
            size: md.len(),
            etag: format!("{:x}-{:x}", md.len(), nanos),
            last_modified: modified.map(DateTime::<Utc>::from),
        }
    }
}

impl LocalStore {
    /// Moves a finished, synced temporary file into place as `key` and makes
    /// the rename durable.
    async fn install(&self, tmp: &Path, key: &ObjectKey) -> StorageResult<ObjectMeta> {
        let target = self.path_of(key);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        tokio::fs::rename(tmp, &target)
            .await
            .map_err(io(format!("moving {key} into place")))?;
        if let Some(parent) = target.parent() {
            let parent = parent.to_path_buf();
            tokio::task::spawn_blocking(move || std::fs::File::open(&parent).and_then(|d| d.sync_all()))
                .await
                .map_err(|e| StorageError::Io {
                    context: "syncing directory".into(),
                    source: std::io::Error::other(e),
                })?
                .map_err(io("syncing directory"))?;
        }
        let md = tokio::fs::metadata(&target).await.map_err(io(format!("stat {key}")))?;
        Ok(Self::meta_of(key.as_str(), &md))
    }

    /// Where the parts of a multipart upload wait, after checking the id is
    /// one this store made (hex only, so it cannot name another path).
    fn multipart_dir(&self, upload_id: &str) -> StorageResult<PathBuf> {
        if upload_id.is_empty() || upload_id.len() > 64 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::InvalidKey {
                key: upload_id.to_string(),
                reason: "not a multipart upload id",
            });
        }
        Ok(self.root.join(".multipart").join(upload_id))
    }
}

impl ObjectStore for LocalStore {
    async fn put_stream<R>(&self, key: &ObjectKey, mut body: R) -> StorageResult<ObjectMeta>
    where
        R: AsyncRead + Unpin + Send,
    {
        let tmp = self.root.join(".tmp").join(uuid::Uuid::new_v4().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(io(format!("creating {}", tmp.display())))?;
            // Copy in bounded chunks: memory stays flat whatever the size.
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = body
                    .read(&mut buf)
                    .await
                    .map_err(io(format!("reading the body of {key}")))?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(io(format!("writing {}", tmp.display())))?;
            }
            file.sync_all()
                .await
                .map_err(io(format!("syncing {}", tmp.display())))?;
            self.install(&tmp, key).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, key: &ObjectKey, range: Option<Range<u64>>) -> StorageResult<ObjectBody> {
        let path = self.path_of(key);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.to_string()));
            }
            Err(e) => return Err(io(format!("opening {key}"))(e)),
        };
        let md = file.metadata().await.map_err(io(format!("stat {key}")))?;
        if md.is_dir() {
            return Err(StorageError::NotFound(key.to_string()));
        }
        let meta = Self::meta_of(key.as_str(), &md);
        let range = clamp_range(key.as_str(), range, meta.size)?;
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(io(format!("seeking {key}")))?;
        let limited = file.take(range.end - range.start);
        let stream = ReaderStream::with_capacity(limited, 64 * 1024).boxed();
        Ok(ObjectBody { meta, range, stream })
    }

    async fn head(&self, key: &ObjectKey) -> StorageResult<Option<ObjectMeta>> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(md) if md.is_file() => Ok(Some(Self::meta_of(key.as_str(), &md))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("stat {key}"))(e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> StorageResult<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("deleting {key}"))(e)),
        }
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            // Only walk the directory the prefix points into.
            let dir_part = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            let mut out = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
                };
                for entry in entries {
                    let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
                    let path = entry.path();
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                    if key.starts_with('.') {
                        continue; // the .tmp directory
                    }
                    let md = entry.metadata().map_err(io(format!("stat {}", path.display())))?;
                    if md.is_dir() {
                        if key.starts_with(&prefix) || prefix.starts_with(&format!("{key}/")) {
                            stack.push(path);
                        }
                    } else if key.starts_with(&prefix) {
                        out.push(Self::meta_of(&key, &md));
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "listing".into(),
            source: std::io::Error::other(e),
        })?
    }

    async fn create_multipart(&self, _key: &ObjectKey) -> StorageResult<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.multipart_dir(&id)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io(format!("creating {}", dir.display())))?;
        Ok(id)
    }

    async fn upload_part(&self, key: &ObjectKey, upload_id: &str, number: u32, bytes: Bytes) -> StorageResult<Part> {
        let dir = self.multipart_dir(upload_id)?;
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(StorageError::NotFound(format!("multipart upload {upload_id} of {key}")));
        }
        let tmp = dir.join(format!("{number:06}.tmp"));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io(format!("creating {}", tmp.display())))?;
        file.write_all(&bytes)
            .await
            .map_err(io(format!("writing {}", tmp.display())))?;
        file.sync_all()
            .await
            .map_err(io(format!("syncing {}", tmp.display())))?;
        tokio::fs::rename(&tmp, dir.join(format!("{number:06}.part")))
            .await
            .map_err(io("storing a part"))?;
        let digest = crc32fast::hash(&bytes);
        Ok(Part {
            number,
            etag: format!("{digest:08x}-{}", bytes.len()),
            size: bytes.len() as u64,
        })
    }

    async fn complete_multipart(&self, key: &ObjectKey, upload_id: &str, parts: &[Part]) -> StorageResult<ObjectMeta> {
        let dir = self.multipart_dir(upload_id)?;
        let tmp = self.root.join(".tmp").join(uuid::Uuid::new_v4().to_string());
        let result = async {
            let mut out = tokio::fs::File::create(&tmp)
                .await
                .map_err(io(format!("creating {}", tmp.display())))?;
            for part in parts {
                let path = dir.join(format!("{:06}.part", part.number));
                let mut f = tokio::fs::File::open(&path).await.map_err(|_| {
                    StorageError::NotFound(format!("part {} of multipart upload {upload_id}", part.number))
                })?;
                let copied = tokio::io::copy(&mut f, &mut out)
                    .await
                    .map_err(io(format!("joining part {}", part.number)))?;
                if copied != part.size {
                    return Err(StorageError::Io {
                        context: format!("part {} of {key}", part.number),
                        source: std::io::Error::other(format!("holds {copied} bytes, {} were uploaded", part.size)),
                    });
                }
            }
            out.sync_all().await.map_err(io(format!("syncing {}", tmp.display())))?;
            self.install(&tmp, key).await
        }
        .await;
        match result {
            Ok(meta) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                Ok(meta)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn abort_multipart(&self, _key: &ObjectKey, upload_id: &str) -> StorageResult<()> {
        match tokio::fs::remove_dir_all(self.multipart_dir(upload_id)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("aborting multipart upload {upload_id}"))(e)),
        }
    }
}
