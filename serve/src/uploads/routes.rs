//! The upload endpoints. tus answers carry `Tus-Resumable`; errors are
//! problem documents like everywhere else.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reelflow_ingest::ObjectStore;
use reelflow_ingest::storage::ObjectKey;
use serde::Serialize;
use sha1::Digest as _;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::protocol::{self, Checksum};
use super::state::{self, Appended, Upload};
use crate::auth::Caller;
use crate::catalog::{Video, VideoStatus};
use crate::db::now_ms;
use crate::problem::{ApiError, ApiPath, ApiResult, Problem};
use crate::state::AppState;

/// The routes of `/v1/uploads` and `PUT /v1/videos/{id}/source`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tus_options, create_upload))
        .routes(routes!(head_upload, patch_upload, delete_upload))
        .routes(routes!(put_source))
}

/// Runs a tus handler's body: 412 for a client of another tus version, and
/// `Tus-Resumable` on every answer, errors included.
async fn tus_answer(headers: &HeaderMap, body: impl Future<Output = ApiResult<Response>>) -> Response {
    if let Some(r) = protocol::version_mismatch(headers) {
        return r;
    }
    protocol::tag(body.await.unwrap_or_else(IntoResponse::into_response))
}

/// What the server supports (no authentication, as tus asks).
#[utoipa::path(options, path = "/v1/uploads", tag = "uploads", responses((status = 204, description = "tus capabilities")))]
pub async fn tus_options(State(state): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(protocol::VERSION));
    h.insert("tus-extension", HeaderValue::from_static(protocol::EXTENSIONS));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(protocol::CHECKSUM_ALGORITHMS),
    );
    h.insert("tus-max-size", HeaderValue::from(state.config.uploads.max_size_bytes));
    protocol::tag(r)
}

fn too_large(detail: String) -> ApiError {
    ApiError::PayloadTooLarge(detail)
}

/// The video a new upload is for, checked: the caller owns it (or is an
/// admin) and it is waiting for its source.
async fn target_video(state: &AppState, caller: &Caller, video_id: Uuid) -> ApiResult<Video> {
    let video = crate::catalog::load_visible(state, Some(caller), video_id).await?;
    if !caller.may_manage(video.owner_id) {
        return Err(ApiError::Forbidden(
            "only the video's owner may upload its source".into(),
        ));
    }
    if !matches!(video.status, VideoStatus::AwaitingUpload | VideoStatus::Failed) {
        return Err(ApiError::Conflict(format!(
            "video {video_id} already has its source (status {})",
            video.status.as_str()
        )));
    }
    Ok(video)
}

async fn check_size(state: &AppState, caller: &Caller, length: u64) -> ApiResult<()> {
    let limits = &state.config.uploads;
    if length == 0 {
        return Err(ApiError::BadRequest("an upload needs at least one byte".into()));
    }
    if length > limits.max_size_bytes {
        return Err(too_large(format!(
            "the file is {length} bytes; the largest accepted is {} bytes",
            limits.max_size_bytes
        )));
    }
    let used = state::bytes_of_user(state, caller.user.id).await?;
    if used + length > limits.quota_bytes_per_user {
        return Err(too_large(format!(
            "this upload would bring your total to {} bytes; your quota is {} bytes",
            used + length,
            limits.quota_bytes_per_user
        )));
    }
    Ok(())
}

fn body_stream(body: Body) -> BoxStream<'static, std::io::Result<bytes::Bytes>> {
    body.into_data_stream().map_err(std::io::Error::other).boxed()
}

/// Stages a chunk on local disk while hashing it; returns the chunk as a
/// stream if its checksum matches, `None` if not. A chunk is verified whole,
/// so one longer than the `remaining` bytes of its upload is refused as soon
/// as it passes them: the disk never holds more than the upload may still
/// take.
async fn verified(
    state: &AppState,
    body: Body,
    expected: &Checksum,
    remaining: u64,
) -> ApiResult<Option<BoxStream<'static, std::io::Result<bytes::Bytes>>>> {
    let past_the_end = || {
        too_large(format!(
            "the chunk goes past Upload-Length: only {remaining} more bytes are expected; \
             a chunk with Upload-Checksum is verified whole, so nothing of it was kept"
        ))
    };
    let dir = state.config.data_dir.join("upload-staging");
    crate::platform::private_dir(&dir).map_err(ApiError::Internal)?;
    let path = dir.join(Uuid::new_v4().simple().to_string());
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    let mut stream = body_stream(body);
    let mut staged = 0u64;
    while let Some(chunk) = stream.next().await {
        // A chunk that did not arrive whole cannot be verified: discard it.
        let Ok(chunk) = chunk else {
            let _ = tokio::fs::remove_file(&path).await;
            return Ok(None);
        };
        staged += chunk.len() as u64;
        if staged > remaining {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(past_the_end());
        }
        match expected {
            Checksum::Sha1(_) => sha1.update(&chunk),
            Checksum::Sha256(_) => sha2::Digest::update(&mut sha256, &chunk),
        }
        file.write_all(&chunk).await.map_err(|e| ApiError::Internal(e.into()))?;
    }
    file.flush().await.map_err(|e| ApiError::Internal(e.into()))?;
    let matches = match expected {
        Checksum::Sha1(d) => sha1.finalize().as_slice() == d.as_slice(),
        Checksum::Sha256(d) => sha2::Digest::finalize(sha256).as_slice() == d.as_slice(),
    };
    if !matches {
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(None);
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    // Unlinked now, readable until closed: nothing is left behind.
    let _ = tokio::fs::remove_file(&path).await;
    Ok(Some(
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed(),
    ))
}

/// Adds the request body at the upload's offset and answers with the new
/// offset (or the reason it could not).
async fn patch_body(state: &AppState, upload: &mut Upload, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let stream = match protocol::checksum(headers)? {
        Some(expected) => match verified(state, body, &expected, upload.length.saturating_sub(upload.offset)).await? {
            Some(s) => s,
            None => {
                return Err(ApiError::ChecksumMismatch(
                    "the chunk's checksum does not match Upload-Checksum; it was discarded".into(),
                ));
            }
        },
        None => body_stream(body),
    };
    let outcome = state::append(state, upload, stream).await?;
    match outcome {
        Appended::Done => {}
        Appended::Interrupted(e) => {
            tracing::info!(upload = %upload.id, offset = upload.offset, error = %e, "upload interrupted; it can resume")
        }
        Appended::TooLong => {
            return Err(too_large(format!(
                "the body goes past Upload-Length ({} bytes); bytes up to it were kept",
                upload.length
            )));
        }
    }
    Ok(offset_response(StatusCode::NO_CONTENT, upload))
}

fn offset_response(status: StatusCode, u: &Upload) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    h.insert("upload-offset", HeaderValue::from(u.offset));
    if u.completed_at.is_none()
        && let Ok(v) = HeaderValue::from_str(&protocol::http_date(u.expires_at))
    {
        h.insert("upload-expires", v);
    }
    protocol::tag(r)
}

/// Starts an upload (tus creation; with a body, creation-with-upload).
/// `Upload-Metadata` must name `video_id`; `filename` and `filetype` are kept.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads", security(("bearer" = [])),
    responses((status = 201, description = "created; Location names the upload"), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn create_upload(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> Response {
    tus_answer(&headers, async {
        if headers.contains_key("upload-defer-length") {
            return Err(ApiError::BadRequest(
                "Upload-Defer-Length is not supported: send Upload-Length".into(),
            ));
        }
        let length = protocol::number(&headers, "upload-length")?
            .ok_or_else(|| ApiError::BadRequest("Upload-Length is required".into()))?;
        let raw_metadata = headers
            .get("upload-metadata")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let metadata = protocol::metadata(&raw_metadata)?;
        state::claimed_checksum(&raw_metadata)?;
        let get = |k: &str| metadata.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let video_id = get("video_id")
            .ok_or_else(|| ApiError::field("Upload-Metadata.video_id", "name the catalog video this file is for"))?;
        let video_id = Uuid::parse_str(&video_id)
            .map_err(|_| ApiError::field("Upload-Metadata.video_id", "must be a video id"))?;
        target_video(&state, &caller, video_id).await?;
        check_size(&state, &caller, length).await?;
        let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("uuids make valid keys");
        let multipart_id = state
            .platform
            .store
            .create_multipart(&key)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let mut upload = Upload {
            id: Uuid::now_v7(),
            owner_id: caller.user.id,
            video_id,
            file_name: get("filename").or_else(|| get("name")),
            content_type: get("filetype").or_else(|| get("type")),
            metadata: raw_metadata,
            length,
            offset: 0,
            object_key: key.to_string(),
            multipart_id,
            parts: Vec::new(),
            tail_len: 0,
            expires_at: now_ms() + state.config.uploads.expire_after_s as i64 * 1000,
            completed_at: None,
        };
        if let Err(e) = state::insert(&state, &upload, state.config.uploads.quota_bytes_per_user).await {
            let _ = state.platform.store.abort_multipart(&key, &upload.multipart_id).await;
            return Err(e);
        }
        let with_body =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) == Some(protocol::OFFSET_OCTET_STREAM);
        if with_body {
            let lock = state::lock_for(upload.id);
            let _held = lock.lock().await;
            patch_body(&state, &mut upload, &headers, body).await?;
        }
        // The offset after any body sent with the creation.
        let mut r = offset_response(StatusCode::CREATED, &upload);
        let location = format!("/v1/uploads/{}", upload.id);
        r.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&location).expect("ascii location"),
        );
        Ok(r)
    })
    .await
}

/// The caller's unfinished or finished upload `id`, or 404.
async fn own_upload(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Upload> {
    match state::load(state, id).await? {
        Some(u) if u.owner_id == caller.user.id && (u.completed_at.is_some() || u.expires_at > now_ms()) => Ok(u),
        _ => Err(ApiError::NotFound(format!("no upload {id}"))),
    }
}

/// Where an upload stands (tus core).
#[utoipa::path(head, path = "/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id")),
    responses((status = 200, description = "Upload-Offset and Upload-Length"), (status = 404, description = "no such upload")))]
pub async fn head_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Response {
    tus_answer(&headers, async {
        let u = own_upload(&state, &caller, id).await?;
        let mut r = offset_response(StatusCode::OK, &u);
        let h = r.headers_mut();
        h.insert("upload-length", HeaderValue::from(u.length));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&u.metadata)
            && !u.metadata.is_empty()
        {
            h.insert("upload-metadata", v);
        }
        Ok::<_, ApiError>(r)
    })
    .await
}

/// Adds bytes at `Upload-Offset` (tus core, with checksum).
#[utoipa::path(patch, path = "/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id")),
    responses((status = 204, description = "stored; Upload-Offset is the new offset"), (status = 409, body = Problem), (status = 460, body = Problem)))]
pub async fn patch_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tus_answer(&headers, async {
        if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some(protocol::OFFSET_OCTET_STREAM) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "PATCH bodies must be {}",
                protocol::OFFSET_OCTET_STREAM
            )));
        }
        let offset = protocol::number(&headers, "upload-offset")?
            .ok_or_else(|| ApiError::BadRequest("Upload-Offset is required".into()))?;
        let lock = state::lock_for(id);
        let _held = lock.lock().await;
        // Read the state only once the lock is held: a previous request may
        // just have stored more.
        let mut u = own_upload(&state, &caller, id).await?;
        if offset != u.offset {
            return Err(ApiError::Conflict(format!(
                "Upload-Offset is {offset} but the upload is at {}",
                u.offset
            )));
        }
        if u.completed_at.is_some() {
            return Ok(offset_response(StatusCode::NO_CONTENT, &u));
        }
        patch_body(&state, &mut u, &headers, body).await
    })
    .await
}

/// Abandons an unfinished upload and its stored bytes (tus termination).
#[utoipa::path(delete, path = "/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "upload id")),
    responses((status = 204, description = "terminated"), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Response {
    tus_answer(&headers, async {
        let lock = state::lock_for(id);
        let _held = lock.lock().await;
        let u = own_upload(&state, &caller, id).await?;
        if u.completed_at.is_some() {
            return Err(ApiError::Conflict(
                "the upload is complete; delete the video instead".into(),
            ));
        }
        state::terminate(&state, &u).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// The answer to a plain upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceUploaded {
    /// The upload's id.
    pub upload_id: Uuid,
    /// The video.
    pub video_id: Uuid,
    /// Bytes stored.
    pub size_bytes: u64,
}

/// Uploads a video's source in one request (for small files and curl:
/// `curl -T clip.mp4 -H 'authorization: Bearer …' …/source`). The body
/// streams to object storage; `Content-Length` is required.
#[utoipa::path(put, path = "/v1/videos/{id}/source", tag = "uploads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "video id")),
    responses((status = 201, body = SourceUploaded), (status = 411, body = Problem), (status = 413, body = Problem)))]
pub async fn put_source(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(video_id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    target_video(&state, &caller, video_id).await?;
    let Some(length) = protocol::number(&headers, "content-length")? else {
        let mut r = ApiError::BadRequest("send Content-Length with the file".into()).into_response();
        *r.status_mut() = StatusCode::LENGTH_REQUIRED;
        return Ok(r);
    };
    check_size(&state, &caller, length).await?;
    let key = ObjectKey::parse(&format!("videos/{video_id}/source")).expect("uuids make valid keys");
    let reader = tokio_util::io::StreamReader::new(body_stream(body));
    let meta = state
        .platform
        .store
        .put_stream(&key, reader)
        .await
        .map_err(|e| match e {
            reelflow_ingest::storage::StorageError::Io { .. } => {
                ApiError::BadRequest(format!("the body did not arrive whole: {e}"))
            }
            other => ApiError::Unavailable(other.to_string()),
        })?;
    if meta.size != length {
        let _ = state.platform.store.delete(&key).await;
        return Err(ApiError::BadRequest(format!(
            "received {} bytes but Content-Length said {length}",
            meta.size
        )));
    }
    let mut upload = Upload {
        id: Uuid::now_v7(),
        owner_id: caller.user.id,
        video_id,
        file_name: None,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        metadata: String::new(),
        length,
        offset: length,
        object_key: key.to_string(),
        multipart_id: String::new(),
        parts: Vec::new(),
        tail_len: 0,
        expires_at: now_ms(),
        completed_at: None,
    };
    if let Err(e) = state::insert(&state, &upload, state.config.uploads.quota_bytes_per_user).await {
        // Another upload took the quota while this one streamed.
        let _ = state.platform.store.delete(&key).await;
        return Err(e);
    }
    state::finish(&state, &mut upload, None).await?;
    let body = SourceUploaded {
        upload_id: upload.id,
        video_id,
        size_bytes: length,
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}
