//! `POST /v1/playback/events`: the player's beacons. A batch of player
//! events of one playback session becomes `reelflow.playback` records,
//! and the answer is 202 only once the log has acknowledged all of them.
//!
//! - The whole batch is checked before anything is appended: a batch with
//!   one bad event gets a 400 listing every bad field, and none of it
//!   reaches the log.
//! - A session belongs to whoever opened it. The first batch (without a
//!   session) gets a new session id and a `session_token`, signed with the
//!   token keyring, naming the session, the video and the caller (or no
//!   one); every later batch of the session must carry that token, from
//!   the same caller, for the same video. So no one can append events to
//!   another viewer's session, and a client-chosen session id is refused.
//!   The viewer is the signed-in caller, attached here; a `user_id` in the
//!   body is refused.
//! - New sessions are rate limited per client IP
//!   (`limits.sessions_per_ip_per_minute`): a view is a session that
//!   attempted playback, so this bounds how fast one address can add views
//!   (see SECURITY.md on view inflation).
//! - Batches are bounded (`playback.max_batch_events`, and the body limit)
//!   and rate limited per session and per client IP.
//! - The body may be sent as `application/json`, or as `text/plain` the
//!   way `navigator.sendBeacon` sends a string (no CORS preflight).
//! - Events are stamped with the server's clock on arrival, in batch order;
//!   a player's clock is never trusted.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reelflow_ingest::EventLog;
use reelflow_ingest::events::{Envelope, PlaybackEvent, PlaybackKind, TopicEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::token;
use crate::auth::{ClientIp, MaybeCaller};
use crate::catalog::Visibility;
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;

/// A batch of player events of one session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeaconBatch {
    /// The video being played.
    pub video_id: Uuid,
    /// The playback session; omit it on the first batch to get one.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// The session's token, from the answer to its first batch: required
    /// on every later batch.
    #[serde(default)]
    pub session_token: Option<String>,
    /// A playback token for the video (needed for private videos).
    #[serde(default)]
    pub token: Option<String>,
    /// The events, oldest first: objects with a `type` (session_start,
    /// first_frame, heartbeat, pause, seek, rebuffer_start, rebuffer_end,
    /// rendition_change, error, end) and that type's fields, as in the
    /// `reelflow.playback` schema.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// What was accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct BeaconAck {
    /// The session the events were recorded under.
    pub session_id: Uuid,
    /// Send it with the session's next batches.
    pub session_token: String,
    /// How many events the log acknowledged.
    pub accepted: usize,
}

/// Audience of session tokens (never an access or playback token).
pub const SESSION_AUDIENCE: &str = "reelflow-beacon-session";

/// How long a session token is good for, seconds (a day: longer than any
/// sitting).
const SESSION_TTL_S: i64 = 24 * 3600;

/// The claims of a session token.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The session.
    pub sub: Uuid,
    /// Its video.
    pub vid: Uuid,
    /// Its viewer, if signed in.
    pub uid: Option<Uuid>,
    /// Always [`SESSION_AUDIENCE`].
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// Longest playhead position accepted, seconds (a week).
const MAX_POSITION_S: f64 = 7.0 * 24.0 * 3600.0;
/// Longest duration accepted in one event, ms (an hour).
const MAX_DURATION_MS: u64 = 3600 * 1000;

fn check_position(errors: &mut Vec<FieldError>, field: String, value: f64) {
    if !value.is_finite() || !(0.0..=MAX_POSITION_S).contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be a number of seconds between 0 and {MAX_POSITION_S}"),
        ));
    }
}

fn check_ms(errors: &mut Vec<FieldError>, field: String, value: u64) {
    if value > MAX_DURATION_MS {
        errors.push(FieldError::new(field, format!("must be at most {MAX_DURATION_MS} ms")));
    }
}

fn check_text(errors: &mut Vec<FieldError>, field: String, value: &str, required: bool, max: usize) {
    if required && value.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
}

fn check_bitrate(errors: &mut Vec<FieldError>, field: String, value: Option<u64>) {
    if value.is_some_and(|b| b > 1_000_000) {
        errors.push(FieldError::new(field, "must be at most 1000000 kbit/s"));
    }
}

/// Reads event `i` of a batch, or says what is wrong with it.
fn parse_event(i: usize, value: serde_json::Value, errors: &mut Vec<FieldError>) -> Option<PlaybackKind> {
    let at = |field: &str| format!("events[{i}].{field}");
    let serde_json::Value::Object(fields) = &value else {
        errors.push(FieldError::new(format!("events[{i}]"), "must be an object"));
        return None;
    };
    for owned in ["user_id", "session_id", "video_id"] {
        if fields.contains_key(owned) {
            let why = if owned == "user_id" {
                "is set by the server from the caller's token"
            } else {
                "is given once for the batch, not per event"
            };
            errors.push(FieldError::new(at(owned), why));
        }
    }
    let kind = match serde_json::from_value::<PlaybackKind>(value) {
        Ok(k) => k,
        Err(e) => {
            errors.push(FieldError::new(format!("events[{i}]"), e.to_string()));
            return None;
        }
    };
    match &kind {
        PlaybackKind::SessionStart { player } => {
            if let Some(p) = player {
                check_text(errors, at("player"), p, false, 100);
            }
        }
        PlaybackKind::FirstFrame { startup_ms } => check_ms(errors, at("startup_ms"), *startup_ms),
        PlaybackKind::Heartbeat {
            position_s,
            played_ms,
            rendition,
            bitrate_kbps,
        } => {
            check_position(errors, at("position_s"), *position_s);
            check_ms(errors, at("played_ms"), *played_ms);
            if let Some(r) = rendition {
                check_text(errors, at("rendition"), r, true, 32);
            }
            check_bitrate(errors, at("bitrate_kbps"), *bitrate_kbps);
        }
        PlaybackKind::Pause { position_s }
        | PlaybackKind::RebufferStart { position_s }
        | PlaybackKind::End { position_s } => {
            check_position(errors, at("position_s"), *position_s);
        }
        PlaybackKind::Seek { from_s, to_s } => {
            check_position(errors, at("from_s"), *from_s);
            check_position(errors, at("to_s"), *to_s);
        }
        PlaybackKind::RebufferEnd { duration_ms } => check_ms(errors, at("duration_ms"), *duration_ms),
        PlaybackKind::RenditionChange { from, to, bitrate_kbps } => {
            if let Some(f) = from {
                check_text(errors, at("from"), f, true, 32);
            }
            check_text(errors, at("to"), to, true, 32);
            check_bitrate(errors, at("bitrate_kbps"), *bitrate_kbps);
        }
        PlaybackKind::Error { code, message, .. } => {
            check_text(errors, at("code"), code, true, 64);
            check_text(errors, at("message"), message, false, 1000);
        }
    }
    Some(kind)
}

fn invalid(state: &AppState, detail: impl Into<String>, errors: Vec<FieldError>) -> Response {
    super::cache::PlaybackMetrics::inc(&state.delivery.metrics.beacon_batches_refused, 1);
    let mut p = Problem::new(StatusCode::BAD_REQUEST, "invalid-beacons", "Invalid Beacon Batch").detail(detail);
    p.errors = errors;
    p.into_response()
}

/// Records a batch of player events.
#[utoipa::path(post, path = "/v1/playback/events", tag = "playback", request_body = BeaconBatch,
    responses((status = 202, body = BeaconAck), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn post_events(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state
        .limits
        .beacons_per_ip
        .check(&ip)
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && essence != "text/plain" {
        return Err(ApiError::UnsupportedMediaType(
            "send the batch as application/json (or text/plain, as sendBeacon does)".into(),
        ));
    }
    let batch: BeaconBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return Ok(invalid(&state, format!("the batch is not valid: {e}"), Vec::new())),
    };
    let max = state.config.playback.max_batch_events;
    if batch.events.is_empty() || batch.events.len() > max {
        return Ok(invalid(
            &state,
            format!("a batch holds 1 to {max} events, not {}", batch.events.len()),
            vec![FieldError::new("events", format!("must hold 1 to {max} events"))],
        ));
    }
    let mut errors = Vec::new();
    let count = batch.events.len();
    let kinds: Vec<PlaybackKind> = batch
        .events
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| parse_event(i, v, &mut errors))
        .collect();
    if !errors.is_empty() {
        return Ok(invalid(
            &state,
            format!(
                "{} problem(s) in the batch; none of its {count} events was recorded",
                errors.len()
            ),
            errors,
        ));
    }

    // The video must exist, and be open to this player.
    let video_id = batch.video_id;
    let claims = match &batch.token {
        Some(t) => Some(token::verify(&state.keys, t, video_id).map_err(|e| ApiError::Forbidden(e.to_string()))?),
        None => None,
    };
    let access = state
        .delivery
        .access(&state.db, video_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no video {video_id}")))?;
    if let Some(claims) = &claims {
        token::admits(claims, &access).map_err(|e| ApiError::Forbidden(e.to_string()))?;
    }
    let manager = caller.0.as_ref().is_some_and(|c| c.may_manage(access.owner));
    if access.visibility == Visibility::Private && batch.token.is_none() && !manager {
        return Err(ApiError::NotFound(format!("no video {video_id}")));
    }

    let user_id = caller.0.as_ref().map(|c| c.user.id);
    let (session_id, session_token) = match &batch.session_token {
        Some(t) => {
            let claims: SessionClaims = state
                .keys
                .verify(t, SESSION_AUDIENCE)
                .map_err(|e| ApiError::Forbidden(format!("the session_token is not valid: {e}")))?;
            if claims.vid != video_id || claims.uid != user_id {
                return Err(ApiError::Forbidden(
                    "the session_token belongs to another video or viewer".into(),
                ));
            }
            if batch.session_id.is_some_and(|s| s != claims.sub) {
                return Err(ApiError::Forbidden("the session_token is for another session".into()));
            }
            (claims.sub, t.clone())
        }
        None if batch.session_id.is_some() => {
            return Err(ApiError::Forbidden(
                "a session goes on with the session_token the answer to its first batch gave; \
                 omit session_id to open a new session"
                    .into(),
            ));
        }
        None => {
            state
                .limits
                .sessions_per_ip
                .check(&ip)
                .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
            let session_id = Uuid::new_v4();
            let now = chrono::Utc::now().timestamp();
            let token = state.keys.sign(&SessionClaims {
                sub: session_id,
                vid: video_id,
                uid: user_id,
                aud: SESSION_AUDIENCE.into(),
                iat: now,
                exp: now + SESSION_TTL_S,
            });
            (session_id, token)
        }
    };
    state
        .limits
        .beacons_per_session
        .check(&session_id.to_string())
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
    let envelopes: Vec<Envelope<PlaybackEvent>> = kinds
        .into_iter()
        .map(|kind| {
            Envelope::new(PlaybackEvent {
                session_id,
                video_id,
                user_id,
                kind,
            })
        })
        .collect();
    let key = session_id.to_string();
    let values: Vec<Vec<u8>> = envelopes.iter().map(Envelope::to_bytes).collect();
    let records: Vec<(&[u8], &[u8])> = values.iter().map(|v| (key.as_bytes(), v.as_slice())).collect();
    state
        .platform
        .log
        .append_batch(PlaybackEvent::TOPIC, &records)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "appending beacons failed");
            ApiError::Unavailable("the event log is unavailable; send the batch again".into())
        })?;
    super::cache::PlaybackMetrics::inc(&state.delivery.metrics.beacon_events, values.len() as u64);
    Ok((
        StatusCode::ACCEPTED,
        Json(BeaconAck {
            session_id,
            session_token,
            accepted: values.len(),
        }),
    )
        .into_response())
}
