//! `/v1/videos`: create, get, update, delete, list and search.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{NewVideo, Video, VideoPage, VideoPatch, VideoStatus};
use super::store::{self, ListFilter};
use crate::accounts::Role;
use crate::auth::{Caller, MaybeCaller};
use crate::problem::{ApiError, ApiJson, ApiPath, ApiResult, FieldError, Problem};
use crate::state::AppState;

/// The routes of `/v1/videos`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_video, list_videos))
        .routes(routes!(get_video, update_video, delete_video))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no video {id}"))
}

/// Creates a video (creators and admins).
#[utoipa::path(post, path = "/v1/videos", tag = "catalog", security(("bearer" = [])), request_body = NewVideo,
    responses((status = 201, body = Video), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_video(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewVideo>,
) -> ApiResult<(StatusCode, Json<Video>)> {
    if caller.user.role == Role::Viewer {
        return Err(ApiError::Forbidden(
            "viewers cannot create videos; ask an admin for the creator role".into(),
        ));
    }
    let tags = new.check().map_err(ApiError::Validation)?;
    let now = chrono::DateTime::from_timestamp_millis(crate::db::now_ms()).unwrap_or_default();
    let video = Video {
        id: Uuid::now_v7(),
        owner_id: caller.user.id,
        title: new.title.trim().to_string(),
        description: new.description,
        genre: new.genre.map(|g| g.trim().to_string()),
        language: new.language,
        tags,
        visibility: new.visibility.unwrap_or(super::Visibility::Public),
        status: VideoStatus::AwaitingUpload,
        created_at: now,
        updated_at: now,
    };
    store::insert(&state, &video).await?;
    Ok((StatusCode::CREATED, Json(video)))
}

/// A video by id. Private videos exist only for their owner and admins.
#[utoipa::path(get, path = "/v1/videos/{id}", tag = "catalog", params(("id" = Uuid, Path, description = "video id")),
    responses((status = 200, body = Video), (status = 404, body = Problem)))]
pub async fn get_video(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Video>> {
    match store::load(&state.db, id).await? {
        Some(video) if store::visible_to(&video, caller.as_ref()) => Ok(Json(video)),
        _ => Err(not_found(id)),
    }
}

/// Changes some fields of a video (its owner or an admin).
#[utoipa::path(patch, path = "/v1/videos/{id}", tag = "catalog", security(("bearer" = [])), request_body = VideoPatch,
    params(("id" = Uuid, Path, description = "video id")),
    responses((status = 200, body = Video), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_video(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<VideoPatch>,
) -> ApiResult<Json<Video>> {
    let mut video = visible_or_404(&state, &caller, id).await?;
    if !caller.may_manage(video.owner_id) {
        return Err(ApiError::Forbidden(
            "only the owner or an admin may change this video".into(),
        ));
    }
    let tags = patch.check().map_err(ApiError::Validation)?;
    if let Some(t) = patch.title {
        video.title = t.trim().to_string();
    }
    if let Some(d) = patch.description {
        video.description = d;
    }
    if let Some(g) = patch.genre {
        video.genre = g.map(|g| g.trim().to_string());
    }
    if let Some(l) = patch.language {
        video.language = l;
    }
    if let Some(t) = tags {
        video.tags = t;
    }
    if let Some(v) = patch.visibility {
        video.visibility = v;
    }
    video.updated_at = chrono::DateTime::from_timestamp_millis(crate::db::now_ms()).unwrap_or_default();
    store::update(&state, &video).await?;
    state.delivery.forget(id).await;
    Ok(Json(video))
}

/// Deletes a video and its files (its owner or an admin).
#[utoipa::path(delete, path = "/v1/videos/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "video id")),
    responses((status = 204, description = "deleted"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_video(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let video = visible_or_404(&state, &caller, id).await?;
    if !caller.may_manage(video.owner_id) {
        return Err(ApiError::Forbidden(
            "only the owner or an admin may delete this video".into(),
        ));
    }
    store::delete_video_and_objects(&state, id).await?;
    state.delivery.forget(id).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn visible_or_404(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Video> {
    match store::load(&state.db, id).await? {
        Some(v) if store::visible_to(&v, Some(caller)) => Ok(v),
        _ => Err(not_found(id)),
    }
}

/// Listing filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this genre.
    pub genre: Option<String>,
    /// Only this language tag.
    pub language: Option<String>,
    /// Only videos of this account.
    pub owner: Option<Uuid>,
    /// Only videos with this tag.
    pub tag: Option<String>,
    /// Only videos in this status (awaiting_upload, uploaded, queued, processing, ready, failed).
    pub status: Option<String>,
    /// Words to find in the title or description (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Videos the caller may see, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/videos", tag = "catalog", params(ListQuery),
    responses((status = 200, body = VideoPage), (status = 422, body = Problem)))]
pub async fn list_videos(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<VideoPage>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut errors = Vec::new();
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => match VideoStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                errors.push(FieldError::new(
                    "status",
                    "must be one of awaiting_upload, uploaded, queued, processing, ready, failed",
                ));
                None
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => match store::parse_cursor(c) {
            Some(a) => Some(a),
            None => {
                errors.push(FieldError::new("cursor", "is not a cursor this API returned"));
                None
            }
        },
    };
    for (name, value) in [
        ("genre", &q.genre),
        ("language", &q.language),
        ("tag", &q.tag),
        ("q", &q.q),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            errors.push(FieldError::new(name, "must be at most 200 characters"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = ListFilter {
        genre: q.genre,
        language: q.language,
        owner: q.owner,
        tag: q.tag,
        status,
        search: q.q.filter(|s| !s.trim().is_empty()),
        limit,
        after,
    };
    let (items, more) = store::list(&state.db, caller.as_ref(), &filter).await?;
    let next_cursor = if more {
        items.last().map(store::cursor_after)
    } else {
        None
    };
    Ok(Json(VideoPage { items, next_cursor }))
}
