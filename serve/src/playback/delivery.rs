//! HLS delivery: the master and rendition playlists, init and media
//! segments, the poster and the storyboard of a video, read from object
//! storage and served the way players and CDNs expect.
//!
//! - **Types**: `application/vnd.apple.mpegurl` for playlists, `video/mp4`
//!   for init segments, `video/iso.segment` for media segments,
//!   `image/jpeg` for pictures.
//! - **HTTP caching**: every answer has an `ETag`; `If-None-Match` gives a
//!   304. Segments and pictures never change once written, so they are
//!   `immutable` for a year; playlists (which grow while a video is still
//!   transcoding) for 2 s. Answers for private videos are `private`, so a
//!   shared cache never keeps them.
//! - **Ranges**: one `bytes=` range gives a 206 (`If-Range` honoured); a
//!   range past the end gives a 416 naming the size; several ranges are
//!   answered with the whole object, as RFC 9110 allows.
//! - **Hot objects** (segments, init segments, pictures up to
//!   `playback.cache_object_max_bytes`) are kept in memory, bounded by
//!   `playback.cache_bytes` in total, so storage is read once per object,
//!   not once per viewer; concurrent misses on one key read it once.
//!   Larger objects are streamed from storage, ranges included.
//! - **Access**: public and unlisted videos are open; a private one needs a
//!   playback token ([`super::token`]) for it in `?token=`, or its owner's
//!   (or an admin's) bearer token. Playlists fetched with a token carry it
//!   into every URI they list. A video's visibility is remembered for
//!   `playback.access_ttl_ms` (this process forgets at once on a change it
//!   makes itself).
//! - Only the names the transcoder writes are served (`master.m3u8`,
//!   `{rendition}/index.m3u8`, `{rendition}/init_N.mp4`,
//!   `{rendition}/seg_NNNNN.m4s`, `poster.jpg`, `storyboard.jpg`), so no
//!   path reaches the source upload or anything else in storage.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use reelflow_ingest::ObjectStore;
use reelflow_ingest::storage::{ObjectKey, StorageError};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::cache::Stored;
use super::token;
use crate::auth::MaybeCaller;
use crate::catalog::Visibility;
use crate::problem::{ApiError, ApiPath, ApiResult, Problem};
use crate::state::AppState;

/// The optional playback token of a delivery URL.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TokenQuery {
    /// A playback token for this video (needed for private videos).
    pub token: Option<String>,
}

/// How a request was let in.
struct Granted {
    /// The token to carry into playlists, when one was used.
    token: Option<String>,
    /// Whether the video is private (answers must not be shared).
    private: bool,
}

/// Checks that the request may read `video`'s media.
async fn authorize(state: &AppState, video: Uuid, query: TokenQuery, caller: &MaybeCaller) -> ApiResult<Granted> {
    // A token that was sent is checked before anything is looked up, so a
    // bad one answers the same whether or not the video exists.
    let claims = match &query.token {
        Some(t) => Some(token::verify(&state.keys, t, video).map_err(|e| ApiError::Forbidden(e.to_string()))?),
        None => None,
    };
    let Some(access) = state.delivery.access(&state.db, video).await? else {
        return Err(ApiError::NotFound(format!("no video {video}")));
    };
    if let Some(claims) = &claims {
        token::admits(claims, &access).map_err(|e| ApiError::Forbidden(e.to_string()))?;
    }
    let private = access.visibility == Visibility::Private;
    let manager = caller.0.as_ref().is_some_and(|c| c.may_manage(access.owner));
    if private && query.token.is_none() && !manager {
        return Err(ApiError::NotFound(format!(
            "no video {video} (a private video plays with a token from POST /v1/videos/{video}/playback-token)"
        )));
    }
    Ok(Granted {
        token: query.token,
        private,
    })
}

/// The kinds of files served, with their headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Playlist,
    Init,
    Segment,
    Jpeg,
}

impl Kind {
    fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Init => "video/mp4",
            Self::Segment => "video/iso.segment",
            Self::Jpeg => "image/jpeg",
        }
    }

    fn cache_control(self, private: bool) -> &'static str {
        match (self, private) {
            (Self::Playlist, false) => "public, max-age=2",
            (Self::Playlist, true) => "private, max-age=2",
            (_, false) => "public, max-age=31536000, immutable",
            (_, true) => "private, max-age=31536000, immutable",
        }
    }
}

/// The file of a rendition `file` names, if it is one the transcoder writes.
fn rendition_file(rendition: &str, file: &str) -> Option<Kind> {
    let rendition_ok = (1..=16).contains(&rendition.len())
        && rendition
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !rendition_ok {
        return None;
    }
    match file {
        "index.m3u8" => Some(Kind::Playlist),
        "init.mp4" => Some(Kind::Init),
        f => {
            let number = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
            // ffmpeg names a variant's init segment init_{variant}.mp4.
            if let Some(variant) = f.strip_prefix("init_").and_then(|f| f.strip_suffix(".mp4")) {
                return number(variant).then_some(Kind::Init);
            }
            let digits = f.strip_prefix("seg_")?.strip_suffix(".m4s")?;
            number(digits).then_some(Kind::Segment)
        }
    }
}

fn no_file(path: &str) -> ApiError {
    ApiError::NotFound(format!("no file {path} for this video"))
}

/// The master playlist.
#[utoipa::path(get, path = "/v1/videos/{id}/hls/master.m3u8", tag = "playback",
    params(("id" = Uuid, Path, description = "video id"), TokenQuery),
    responses((status = 200, description = "the master playlist", content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "not modified"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn master(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<Uuid>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let granted = authorize(&state, id, query, &caller).await?;
    serve(
        &state,
        &format!("videos/{id}/hls/master.m3u8"),
        Kind::Playlist,
        &granted,
        &headers,
    )
    .await
}

/// A rendition's playlist, init segment or media segment.
#[utoipa::path(get, path = "/v1/videos/{id}/hls/{rendition}/{file}", tag = "playback",
    params(("id" = Uuid, Path, description = "video id"), ("rendition" = String, Path, description = "rendition, such as 720p"),
        ("file" = String, Path, description = "index.m3u8, init_N.mp4 or seg_NNNNN.m4s"), TokenQuery),
    responses((status = 200, description = "the file"), (status = 206, description = "a range of it"),
        (status = 304, description = "not modified"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 416, body = Problem)))]
pub async fn rendition(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath((id, rendition, file)): ApiPath<(Uuid, String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind = rendition_file(&rendition, &file).ok_or_else(|| no_file(&format!("{rendition}/{file}")))?;
    let granted = authorize(&state, id, query, &caller).await?;
    serve(
        &state,
        &format!("videos/{id}/hls/{rendition}/{file}"),
        kind,
        &granted,
        &headers,
    )
    .await
}

/// The poster (a still from 10 % into the video, 360 lines high).
#[utoipa::path(get, path = "/v1/videos/{id}/poster.jpg", tag = "playback",
    params(("id" = Uuid, Path, description = "video id"), TokenQuery),
    responses((status = 200, description = "the poster", content_type = "image/jpeg"), (status = 404, body = Problem)))]
pub async fn poster(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<Uuid>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    picture(&state, &caller, id, query, &headers, "poster.jpg").await
}

/// The storyboard: a 10x10 sprite of thumbnails over the whole video.
#[utoipa::path(get, path = "/v1/videos/{id}/storyboard.jpg", tag = "playback",
    params(("id" = Uuid, Path, description = "video id"), TokenQuery),
    responses((status = 200, description = "the storyboard", content_type = "image/jpeg"), (status = 404, body = Problem)))]
pub async fn storyboard(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiPath(id): ApiPath<Uuid>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    picture(&state, &caller, id, query, &headers, "storyboard.jpg").await
}

/// A picture of the video, `name` under its prefix.
async fn picture(
    state: &AppState,
    caller: &MaybeCaller,
    id: Uuid,
    query: TokenQuery,
    headers: &HeaderMap,
    name: &str,
) -> ApiResult<Response> {
    let granted = authorize(state, id, query, caller).await?;
    serve(state, &format!("videos/{id}/{name}"), Kind::Jpeg, &granted, headers).await
}

fn storage_error(path: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound(_) => no_file(path.rsplit_once("/hls/").map_or(path, |(_, f)| f)),
        e if e.is_retryable() => {
            tracing::warn!(error = %e, "object storage unavailable");
            ApiError::Unavailable("object storage is unavailable; try again shortly".into())
        }
        e => ApiError::Internal(anyhow::Error::new(e).context(format!("reading {path}"))),
    }
}

async fn read_whole(state: &AppState, key: &str) -> Result<Stored, StorageError> {
    let object_key = ObjectKey::parse(key)?;
    let body = state.platform.store.get(&object_key, None).await?;
    let etag: Arc<str> = Arc::from(quoted(&body.meta.etag));
    Ok(Stored {
        bytes: Bytes::from(body.collect().await?),
        etag,
    })
}

fn quoted(etag: &str) -> String {
    let bare = etag.trim_matches('"');
    format!("\"{bare}\"")
}

/// Answers a GET (or HEAD) for the object at `key`.
async fn serve(state: &AppState, key: &str, kind: Kind, granted: &Granted, headers: &HeaderMap) -> ApiResult<Response> {
    let delivery = &state.delivery;
    if kind == Kind::Playlist {
        let stored = delivery
            .playlists
            .try_get_with(key.to_string(), read_whole(state, key))
            .await
            .map_err(|e| arc_storage_error(key, e))?;
        return Ok(playlist_response(stored, granted, headers));
    }
    // Small objects come from (and go into) memory; on a miss, the size
    // decides whether the object is kept or streamed.
    let metrics = &delivery.metrics;
    if let Some(stored) = delivery.objects.get(key).await {
        super::cache::PlaybackMetrics::inc(&metrics.cache_hits, 1);
        return Ok(bytes_response(&stored, kind, granted.private, headers, metrics));
    }
    super::cache::PlaybackMetrics::inc(&metrics.cache_misses, 1);
    let object_key = ObjectKey::parse(key).map_err(|e| storage_error(key, e))?;
    let meta = state
        .platform
        .store
        .head(&object_key)
        .await
        .map_err(|e| storage_error(key, e))?
        .ok_or_else(|| storage_error(key, StorageError::NotFound(key.to_string())))?;
    if meta.size > delivery.object_max {
        return stream_response(state, &object_key, meta, kind, granted.private, headers, metrics).await;
    }
    let stored = delivery
        .objects
        .try_get_with(key.to_string(), read_whole(state, key))
        .await
        .map_err(|e| arc_storage_error(key, e))?;
    Ok(bytes_response(&stored, kind, granted.private, headers, metrics))
}

fn arc_storage_error(key: &str, e: Arc<StorageError>) -> ApiError {
    match Arc::into_inner(e) {
        Some(e) => storage_error(key, e),
        None => ApiError::Unavailable(format!("reading {key} failed; try again shortly")),
    }
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110
/// says for this header).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    value.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

fn not_modified(etag: &str, cache_control: &'static str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    response
}

fn playlist_response(stored: Stored, granted: &Granted, headers: &HeaderMap) -> Response {
    let cache_control = Kind::Playlist.cache_control(granted.private);
    // A rewritten playlist is another representation: its tag says which.
    let (body, etag) = match &granted.token {
        Some(t) => {
            let text = String::from_utf8_lossy(&stored.bytes);
            let mut hasher = std::hash::DefaultHasher::new();
            t.hash(&mut hasher);
            let etag = format!("W/\"{}-{:x}\"", stored.etag.trim_matches('"'), hasher.finish());
            (Bytes::from(token::carry_into_playlist(&text, t)), etag)
        }
        None => (stored.bytes.clone(), format!("W/{}", stored.etag)),
    };
    if none_match(headers, &etag) {
        return not_modified(&etag, cache_control);
    }
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Kind::Playlist.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// What the `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// The whole object (no range, several ranges, an unreadable header, or
    /// an `If-Range` that no longer matches).
    Whole,
    /// One range.
    Part(Range<u64>),
    /// A range that starts past the end.
    Unsatisfiable,
}

fn wanted(headers: &HeaderMap, size: u64, etag: &str) -> Wanted {
    let Some(spec) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok())
        && if_range.trim() != etag
    {
        return Wanted::Whole;
    }
    let Some(ranges) = spec.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if ranges.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = ranges.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), parse(first), parse(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => {
            if size == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(size.saturating_sub(n)..size)
            }
        }
        (true, _, _) => Wanted::Unsatisfiable,
        (false, Some(a), None) if last.trim().is_empty() => {
            if a >= size {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(a..size)
            }
        }
        (false, Some(a), Some(b)) if a <= b => {
            if a >= size {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(a..(b + 1).min(size))
            }
        }
        _ => Wanted::Whole,
    }
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = Problem::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range-not-satisfiable",
        "Range Not Satisfiable",
    )
    .detail(format!("the range starts past the end of the {size}-byte object"))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    response
}

fn media_headers(response: &mut Response, kind: Kind, private: bool, etag: &str) {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control(private)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
}

fn partial(response: &mut Response, range: &Range<u64>, size: u64) {
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1)) {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
}

fn bytes_response(
    stored: &Stored,
    kind: Kind,
    private: bool,
    headers: &HeaderMap,
    metrics: &super::cache::PlaybackMetrics,
) -> Response {
    if none_match(headers, &stored.etag) {
        return not_modified(&stored.etag, kind.cache_control(private));
    }
    let size = stored.bytes.len() as u64;
    let (body, range) = match wanted(headers, size, &stored.etag) {
        Wanted::Whole => (stored.bytes.clone(), None),
        Wanted::Part(r) => (stored.bytes.slice(r.start as usize..r.end as usize), Some(r)),
        Wanted::Unsatisfiable => return unsatisfiable(size),
    };
    super::cache::PlaybackMetrics::inc(&metrics.bytes_sent, body.len() as u64);
    let mut response = Response::new(Body::from(body));
    media_headers(&mut response, kind, private, &stored.etag);
    if let Some(r) = range {
        partial(&mut response, &r, size);
    }
    response
}

async fn stream_response(
    state: &AppState,
    key: &ObjectKey,
    meta: reelflow_ingest::storage::ObjectMeta,
    kind: Kind,
    private: bool,
    headers: &HeaderMap,
    metrics: &super::cache::PlaybackMetrics,
) -> ApiResult<Response> {
    let etag = quoted(&meta.etag);
    if none_match(headers, &etag) {
        return Ok(not_modified(&etag, kind.cache_control(private)));
    }
    let size = meta.size;
    let range = match wanted(headers, size, &etag) {
        Wanted::Whole => None,
        Wanted::Part(r) => Some(r),
        Wanted::Unsatisfiable => return Ok(unsatisfiable(size)),
    };
    let body = state
        .platform
        .store
        .get(key, range.clone())
        .await
        .map_err(|e| storage_error(key.as_str(), e))?;
    let length = body.range.end - body.range.start;
    super::cache::PlaybackMetrics::inc(&metrics.bytes_sent, length);
    let mut response = Response::new(Body::from_stream(body.stream));
    media_headers(&mut response, kind, private, &etag);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(r) = range {
        partial(&mut response, &r, size);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(spec).expect("header"));
        h
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let e = "\"e\"";
        assert_eq!(wanted(&HeaderMap::new(), 100, e), Wanted::Whole);
        assert_eq!(wanted(&range("bytes=0-9"), 100, e), Wanted::Part(0..10));
        assert_eq!(wanted(&range("bytes=90-200"), 100, e), Wanted::Part(90..100));
        assert_eq!(wanted(&range("bytes=95-"), 100, e), Wanted::Part(95..100));
        assert_eq!(wanted(&range("bytes=-10"), 100, e), Wanted::Part(90..100));
        assert_eq!(wanted(&range("bytes=-1000"), 100, e), Wanted::Part(0..100));
        assert_eq!(wanted(&range("bytes=100-"), 100, e), Wanted::Unsatisfiable);
        assert_eq!(wanted(&range("bytes=-0"), 100, e), Wanted::Unsatisfiable);
        assert_eq!(wanted(&range("bytes=0-1,5-6"), 100, e), Wanted::Whole);
        assert_eq!(wanted(&range("bytes=9-1"), 100, e), Wanted::Whole);
        assert_eq!(wanted(&range("items=0-1"), 100, e), Wanted::Whole);
        let mut stale = range("bytes=0-9");
        stale.insert(header::IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(wanted(&stale, 100, e), Wanted::Whole);
        stale.insert(header::IF_RANGE, HeaderValue::from_static("\"e\""));
        assert_eq!(wanted(&stale, 100, e), Wanted::Part(0..10));
    }

    #[test]
    fn only_the_transcoders_names_are_served() {
        assert_eq!(rendition_file("720p", "index.m3u8"), Some(Kind::Playlist));
        assert_eq!(rendition_file("720p", "init.mp4"), Some(Kind::Init));
        assert_eq!(rendition_file("720p", "init_2.mp4"), Some(Kind::Init));
        assert_eq!(rendition_file("720p", "seg_00012.m4s"), Some(Kind::Segment));
        for (r, f) in [
            ("..", "index.m3u8"),
            ("../..", "source"),
            ("720p", "source"),
            ("720p", "seg_.m4s"),
            ("720p", "seg_1a.m4s"),
            ("720p", "init_.mp4"),
            ("720p", "init_x.mp4"),
            ("720p", "../master.m3u8"),
            ("", "init.mp4"),
            ("a/b", "init.mp4"),
        ] {
            assert_eq!(rendition_file(r, f), None, "{r}/{f}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(none_match(&h, "\"b\""));
        assert!(none_match(&h, "W/\"a\""));
        assert!(!none_match(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&h, "\"c\""));
    }
}
