//! Where each upload stands (the `uploads` table), how bytes are added to
//! it part by part, and how it completes. See the module doc of
//! [`crate::uploads`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use reelflow_ingest::ObjectStore;
use reelflow_ingest::events::{Checksum, ChecksumAlgorithm, Envelope, UploadEvent};
use reelflow_ingest::storage::{ObjectKey, Part};
use sqlx::Row;
use uuid::Uuid;

use crate::db::now_ms;
use crate::outbox;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// An upload as stored.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub video_id: Uuid,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    /// The `Upload-Metadata` header as the client sent it, echoed on HEAD.
    pub metadata: String,
    pub length: u64,
    pub offset: u64,
    pub object_key: String,
    pub multipart_id: String,
    pub parts: Vec<Part>,
    pub tail_len: u64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
}

impl Upload {
    /// The object holding the bytes after the last full part.
    pub fn tail_key(&self) -> ObjectKey {
        ObjectKey::parse(&format!("videos/{}/uploads/{}/tail", self.video_id, self.id)).expect("uuids make valid keys")
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey::parse(&self.object_key).expect("object keys are checked when uploads are created")
    }

    fn parts_total(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

fn corrupt(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("uploads row has an invalid {what}"))
}

pub(crate) async fn load(state: &AppState, id: Uuid) -> ApiResult<Option<Upload>> {
    let row = sqlx::query(
        "SELECT id, owner_id, video_id, file_name, content_type, metadata, length, upload_offset, object_key, \
         multipart_id, parts, tail_len, expires_at, completed_at FROM uploads WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let uuid =
        |col: &str| -> ApiResult<Uuid> { Uuid::parse_str(&r.try_get::<String, _>(col)?).map_err(|_| corrupt(col)) };
    Ok(Some(Upload {
        id: uuid("id")?,
        owner_id: uuid("owner_id")?,
        video_id: uuid("video_id")?,
        file_name: r.try_get("file_name")?,
        content_type: r.try_get("content_type")?,
        metadata: r.try_get("metadata")?,
        length: r.try_get::<i64, _>("length")? as u64,
        offset: r.try_get::<i64, _>("upload_offset")? as u64,
        object_key: r.try_get("object_key")?,
        multipart_id: r.try_get("multipart_id")?,
        parts: serde_json::from_str(&r.try_get::<String, _>("parts")?).map_err(|_| corrupt("parts"))?,
        tail_len: r.try_get::<i64, _>("tail_len")? as u64,
        expires_at: r.try_get("expires_at")?,
        completed_at: r.try_get("completed_at")?,
    }))
}

///
/// The row reserves its `length` against the owner's quota atomically: it
/// is inserted only if the owner's uploads, this one included, stay within
/// `quota` bytes (on PostgreSQL under a lock of the owner's row, since two
/// inserts would not see each other's; SQLite runs one writer at a time).
/// Concurrent creations can no longer all pass a check made before any of
/// them was stored.
pub(crate) async fn insert(state: &AppState, u: &Upload, quota: u64) -> ApiResult<()> {
    let mut tx = state.db.pool.begin().await?;
    if state.db.kind == crate::db::DbKind::Postgres {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(u.owner_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO uploads (id, owner_id, video_id, file_name, content_type, metadata, length, upload_offset, object_key, \
         multipart_id, parts, tail_len, created_at, expires_at, completed_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
         WHERE (SELECT COALESCE(CAST(SUM(length) AS BIGINT), 0) FROM uploads WHERE owner_id = $2) + $7 <= $16",
    )
    .bind(u.id.to_string())
    .bind(u.owner_id.to_string())
    .bind(u.video_id.to_string())
    .bind(&u.file_name)
    .bind(&u.content_type)
    .bind(&u.metadata)
    .bind(u.length as i64)
    .bind(u.offset as i64)
    .bind(&u.object_key)
    .bind(&u.multipart_id)
    .bind(serde_json::to_string(&u.parts).expect("parts serialise"))
    .bind(u.tail_len as i64)
    .bind(now_ms())
    .bind(u.expires_at)
    .bind(u.completed_at)
    .bind(i64::try_from(quota).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let used =
            sqlx::query_scalar::<_, Option<i64>>("SELECT CAST(SUM(length) AS BIGINT) FROM uploads WHERE owner_id = $1")
                .bind(u.owner_id.to_string())
                .fetch_one(&mut *tx)
                .await?
                .unwrap_or(0);
        return Err(ApiError::PayloadTooLarge(format!(
            "this upload would bring your total to {} bytes; your quota is {quota} bytes",
            used.max(0) as u64 + u.length
        )));
    }
    tx.commit().await?;
    Ok(())
}

async fn save_progress(state: &AppState, u: &Upload) -> ApiResult<()> {
    sqlx::query("UPDATE uploads SET upload_offset = $1, parts = $2, tail_len = $3 WHERE id = $4")
        .bind(u.offset as i64)
        .bind(serde_json::to_string(&u.parts).expect("parts serialise"))
        .bind(u.tail_len as i64)
        .bind(u.id.to_string())
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Bytes the user has uploaded or is uploading, all uploads together.
pub(crate) async fn bytes_of_user(state: &AppState, user: Uuid) -> ApiResult<u64> {
    // PostgreSQL sums BIGINTs into NUMERIC: cast back.
    let total: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(length) AS BIGINT) FROM uploads WHERE owner_id = $1")
        .bind(user.to_string())
        .fetch_one(&state.db.pool)
        .await?;
    Ok(total.unwrap_or(0).max(0) as u64)
}

/// One PATCH at a time per upload in this process: a client that resumes
/// while the server still reads its broken previous request waits for it.
static LOCKS: LazyLock<Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

pub(crate) fn lock_for(id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = LOCKS.lock().expect("upload locks");
    locks.retain(|_, w| w.strong_count() > 0);
    if let Some(l) = locks.get(&id).and_then(Weak::upgrade) {
        return l;
    }
    let l = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(id, Arc::downgrade(&l));
    l
}

/// How an append ended.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Every byte of the body was stored.
    Done,
    /// The body broke off (the client went away); what arrived was stored.
    Interrupted(std::io::Error),
    /// The body went past `Upload-Length`; the bytes up to it were stored.
    TooLong,
}

/// Adds the bytes of `body` at the upload's offset, storing each full part as
/// it fills and the rest as the tail, and completes the upload when its
/// last byte arrives.
pub(crate) async fn append(
    state: &AppState,
    u: &mut Upload,
    mut body: BoxStream<'static, std::io::Result<Bytes>>,
) -> ApiResult<Appended> {
    let store = &state.platform.store;
    let part_size = state.config.uploads.part_size_bytes;
    let key = u.key();
    let mut buf = BytesMut::with_capacity(part_size);
    if u.tail_len > 0 {
        let tail = store
            .get(&u.tail_key(), None)
            .await
            .map_err(storage_error)?
            .collect()
            .await
            .map_err(storage_error)?;
        if tail.len() as u64 != u.tail_len {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "tail of upload {} has {} bytes, {} expected",
                u.id,
                tail.len(),
                u.tail_len
            )));
        }
        buf.extend_from_slice(&tail);
    }
    let mut outcome = Appended::Done;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                outcome = Appended::Interrupted(e);
                break;
            }
        };
        let room = (u.length - u.offset) as usize;
        let take = chunk.len().min(room);
        buf.extend_from_slice(&chunk[..take]);
        u.offset += take as u64;
        while buf.len() >= part_size {
            let part = buf.split_to(part_size).freeze();
            let number = u.parts.len() as u32 + 1;
            u.parts.push(
                store
                    .upload_part(&key, &u.multipart_id, number, part)
                    .await
                    .map_err(storage_error)?,
            );
            // What is in `buf` is not stored yet: the durable offset is the
            // parts' end until the tail is written.
            u.tail_len = 0;
            let in_memory = u.offset;
            u.offset = u.parts_total();
            save_progress(state, u).await?;
            u.offset = in_memory;
        }
        if take < chunk.len() {
            outcome = Appended::TooLong;
            break;
        }
    }
    if u.offset == u.length {
        complete(state, u, buf.freeze()).await?;
    } else if !buf.is_empty() || u.tail_len > 0 {
        u.tail_len = buf.len() as u64;
        store.put_bytes(&u.tail_key(), &buf).await.map_err(storage_error)?;
        save_progress(state, u).await?;
    }
    Ok(outcome)
}

fn storage_error(e: reelflow_ingest::storage::StorageError) -> ApiError {
    tracing::warn!(error = %e, "object storage failed during an upload");
    ApiError::Unavailable(format!("object storage failed: {e}"))
}

/// Joins the parts into the source object, checks its size, and commits
/// the completion with its `upload_completed` event.
async fn complete(state: &AppState, u: &mut Upload, last: Bytes) -> ApiResult<()> {
    let store = &state.platform.store;
    let key = u.key();
    if !last.is_empty() || u.parts.is_empty() {
        let number = u.parts.len() as u32 + 1;
        u.parts.push(
            store
                .upload_part(&key, &u.multipart_id, number, last)
                .await
                .map_err(storage_error)?,
        );
    }
    let meta = store
        .complete_multipart(&key, &u.multipart_id, &u.parts)
        .await
        .map_err(storage_error)?;
    if meta.size != u.length {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "upload {} stored {} bytes of {}",
            u.id,
            meta.size,
            u.length
        )));
    }
    let _ = store.delete(&u.tail_key()).await;
    u.tail_len = 0;
    let checksum = claimed_checksum(&u.metadata)?;
    if let Some(claimed) = &checksum {
        let actual = hash_object(state, &key, claimed.algorithm).await?;
        if actual != claimed.hex {
            // The bytes are not the file the client meant: nothing of it stays.
            let _ = store.delete(&key).await;
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(u.id.to_string())
                .execute(&state.db.pool)
                .await?;
            return Err(ApiError::ChecksumMismatch(format!(
                "the file's {} is {actual}, not the {} in Upload-Metadata; the upload was discarded",
                algorithm_name(claimed.algorithm),
                claimed.hex
            )));
        }
    }
    finish(state, u, checksum).await
}

fn algorithm_name(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Sha1 => "sha1",
        ChecksumAlgorithm::Sha256 => "sha256",
    }
}

/// The whole-file checksum a client may send as `Upload-Metadata` key
/// `checksum`, valued `sha256:<hex>` or `sha1:<hex>`.
pub(crate) fn claimed_checksum(raw_metadata: &str) -> ApiResult<Option<Checksum>> {
    let metadata = super::protocol::metadata(raw_metadata)?;
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "checksum") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::field(
            "Upload-Metadata.checksum",
            "must be sha256:<64 hex digits> or sha1:<40 hex digits>",
        )
    };
    let (algorithm, hex) = value.split_once(':').ok_or_else(bad)?;
    let hex = hex.trim().to_lowercase();
    let (algorithm, len) = match algorithm {
        "sha256" => (ChecksumAlgorithm::Sha256, 64),
        "sha1" => (ChecksumAlgorithm::Sha1, 40),
        _ => return Err(bad()),
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Some(Checksum { algorithm, hex }))
}

/// Hashes a stored object by streaming it back.
async fn hash_object(state: &AppState, key: &ObjectKey, algorithm: ChecksumAlgorithm) -> ApiResult<String> {
    use sha2::Digest;
    let body = state.platform.store.get(key, None).await.map_err(storage_error)?;
    let mut stream = body.stream;
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Unavailable(format!("reading the stored upload back: {e}")))?;
        match algorithm {
            ChecksumAlgorithm::Sha1 => sha1.update(&chunk),
            ChecksumAlgorithm::Sha256 => sha256.update(&chunk),
        }
    }
    let digest: Vec<u8> = match algorithm {
        ChecksumAlgorithm::Sha1 => sha1.finalize().to_vec(),
        ChecksumAlgorithm::Sha256 => sha256.finalize().to_vec(),
    };
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Records a stored source object: the upload is complete, the video is
/// `uploaded`, and `upload_completed` is on its way to `reelflow.uploads`.
pub(crate) async fn finish(state: &AppState, u: &mut Upload, checksum: Option<Checksum>) -> ApiResult<()> {
    let now = now_ms();
    u.completed_at = Some(now);
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("UPDATE uploads SET upload_offset = $1, parts = $2, tail_len = 0, completed_at = $3 WHERE id = $4")
        .bind(u.length as i64)
        .bind(serde_json::to_string(&u.parts).expect("parts serialise"))
        .bind(now)
        .bind(u.id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE videos SET status = 'uploaded', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(u.video_id.to_string())
        .execute(&mut *tx)
        .await?;
    let event = UploadEvent::UploadCompleted {
        video_id: u.video_id,
        upload_id: u.id,
        owner_id: u.owner_id,
        object_key: u.object_key.clone(),
        size_bytes: u.length,
        checksum,
        file_name: u.file_name.clone(),
        content_type: u.content_type.clone(),
    };
    outbox::enqueue(&mut tx, &Envelope::new(event)).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// Forgets an unfinished upload and its stored bytes.
pub(crate) async fn terminate(state: &AppState, u: &Upload) -> ApiResult<()> {
    let store = &state.platform.store;
    store
        .abort_multipart(&u.key(), &u.multipart_id)
        .await
        .map_err(storage_error)?;
    store.delete(&u.tail_key()).await.map_err(storage_error)?;
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(u.id.to_string())
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Drops unfinished uploads past their expiry; returns how many.
pub async fn sweep_expired(state: &AppState) -> ApiResult<usize> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at < $1")
        .bind(now_ms())
        .fetch_all(&state.db.pool)
        .await?;
    let mut n = 0;
    for id in ids {
        let Ok(id) = Uuid::parse_str(&id) else { continue };
        if let Some(u) = load(state, id).await? {
            let lock = lock_for(id);
            let _held = lock.lock().await;
            terminate(state, &u).await?;
            n += 1;
        }
    }
    Ok(n)
}
