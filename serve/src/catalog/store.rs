//! Catalog queries. Filters become bound parameters, never SQL text; search
//! patterns escape `%`, `_` and `\` so they match literally.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reelflow_ingest::ObjectStore;
use reelflow_ingest::events::{CatalogEvent, Envelope};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::model::{Video, VideoStatus, Visibility};
use crate::accounts::Role;
use crate::auth::Caller;
use crate::db::Db;
use crate::outbox;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

const VIDEO_COLUMNS: &str =
    "v.id, v.owner_id, v.title, v.description, v.genre, v.language, v.visibility, v.status, v.created_at, v.updated_at";

fn video_from_row(row: &AnyRow) -> ApiResult<Video> {
    let bad = |what: &str| ApiError::Internal(anyhow::anyhow!("videos row has an invalid {what}"));
    let ts = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok(Video {
        id: Uuid::parse_str(&row.try_get::<String, _>("id")?).map_err(|_| bad("id"))?,
        owner_id: Uuid::parse_str(&row.try_get::<String, _>("owner_id")?).map_err(|_| bad("owner_id"))?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        genre: row.try_get("genre")?,
        language: row.try_get("language")?,
        tags: Vec::new(),
        visibility: Visibility::parse(&row.try_get::<String, _>("visibility")?).ok_or_else(|| bad("visibility"))?,
        status: VideoStatus::parse(&row.try_get::<String, _>("status")?).ok_or_else(|| bad("status"))?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

/// Fills in the tags of `videos` with one query.
async fn attach_tags(db: &Db, videos: &mut [Video]) -> ApiResult<()> {
    if videos.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=videos.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT video_id, tag FROM video_tags WHERE video_id IN ({}) ORDER BY tag",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for v in videos.iter() {
        query = query.bind(v.id.to_string());
    }
    let mut by_video: HashMap<String, Vec<String>> = HashMap::new();
    for row in query.fetch_all(&db.pool).await? {
        by_video
            .entry(row.try_get("video_id")?)
            .or_default()
            .push(row.try_get("tag")?);
    }
    for v in videos.iter_mut() {
        v.tags = by_video.remove(&v.id.to_string()).unwrap_or_default();
    }
    Ok(())
}

/// The video, whoever may or may not see it.
pub async fn load(db: &Db, id: Uuid) -> ApiResult<Option<Video>> {
    let row = sqlx::query(&format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE v.id = $1"))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut video = [video_from_row(&row)?];
    attach_tags(db, &mut video).await?;
    let [video] = video;
    Ok(Some(video))
}

/// Who may play `id`: its visibility, owner and playback generation.
pub async fn playback_access(db: &Db, id: Uuid) -> ApiResult<Option<(Visibility, Uuid, i64)>> {
    let row = sqlx::query("SELECT visibility, owner_id, playback_generation FROM videos WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let bad = |what: &str| ApiError::Internal(anyhow::anyhow!("videos row has an invalid {what}"));
    Ok(Some((
        Visibility::parse(&row.try_get::<String, _>("visibility")?).ok_or_else(|| bad("visibility"))?,
        Uuid::parse_str(&row.try_get::<String, _>("owner_id")?).map_err(|_| bad("owner_id"))?,
        row.try_get("playback_generation")?,
    )))
}

/// The video if `caller` may see it, else the 404 of a missing video.
pub async fn load_visible(state: &AppState, caller: Option<&Caller>, id: Uuid) -> ApiResult<Video> {
    match load(&state.db, id).await? {
        Some(v) if visible_to(&v, caller) => Ok(v),
        _ => Err(ApiError::NotFound(format!("no video {id}"))),
    }
}

/// Whether `caller` may see `video` at all.
pub(crate) fn visible_to(video: &Video, caller: Option<&Caller>) -> bool {
    video.visibility != Visibility::Private || caller.is_some_and(|c| c.may_manage(video.owner_id))
}

async fn write_tags(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: Uuid, tags: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM video_tags WHERE video_id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO video_tags (video_id, tag) VALUES ($1, $2)")
            .bind(id.to_string())
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Adds the change's event to the outbox, commits both, and wakes the
/// publisher.
async fn commit_with_event(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    event: CatalogEvent,
) -> ApiResult<()> {
    outbox::enqueue(&mut tx, &Envelope::new(event)).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// Inserts a new video with its event.
pub(crate) async fn insert(state: &AppState, video: &Video) -> ApiResult<()> {
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO videos (id, owner_id, title, description, genre, language, visibility, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(video.id.to_string())
    .bind(video.owner_id.to_string())
    .bind(&video.title)
    .bind(&video.description)
    .bind(&video.genre)
    .bind(&video.language)
    .bind(video.visibility.as_str())
    .bind(video.status.as_str())
    .bind(video.created_at.timestamp_millis())
    .execute(&mut *tx)
    .await?;
    write_tags(&mut tx, video.id, &video.tags).await?;
    commit_with_event(
        state,
        tx,
        CatalogEvent::VideoCreated {
            video_id: video.id,
            video: video.meta(),
        },
    )
    .await
}

/// Stores a changed video with its event.
pub(crate) async fn update(state: &AppState, video: &Video) -> ApiResult<()> {
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        // A change of visibility moves the playback generation on, which
        // revokes the playback tokens issued before it.
        "UPDATE videos SET title = $1, description = $2, genre = $3, language = $4, visibility = $5, updated_at = $6, \
         playback_generation = playback_generation + CASE WHEN visibility = $5 THEN 0 ELSE 1 END WHERE id = $7",
    )
    .bind(&video.title)
    .bind(&video.description)
    .bind(&video.genre)
    .bind(&video.language)
    .bind(video.visibility.as_str())
    .bind(video.updated_at.timestamp_millis())
    .bind(video.id.to_string())
    .execute(&mut *tx)
    .await?;
    write_tags(&mut tx, video.id, &video.tags).await?;
    commit_with_event(
        state,
        tx,
        CatalogEvent::VideoUpdated {
            video_id: video.id,
            video: video.meta(),
        },
    )
    .await
}

/// Deletes a video's objects, then the video with its event. Objects go
/// first: if that fails the video is still there and a retried DELETE
/// finishes the job, instead of leaving objects nobody can find.
pub async fn delete_video_and_objects(state: &AppState, id: Uuid) -> ApiResult<()> {
    let Some(video) = load(&state.db, id).await? else {
        return Ok(());
    };
    state
        .platform
        .store
        .delete_prefix(&format!("videos/{id}/"))
        .await
        .map_err(|e| {
            tracing::warn!(video = %id, error = %e, "could not delete a video's objects");
            ApiError::Unavailable("object storage did not delete the video's files; try again".into())
        })?;
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM video_tags WHERE video_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM videos WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    commit_with_event(
        state,
        tx,
        CatalogEvent::VideoDeleted {
            video_id: id,
            owner_id: video.owner_id,
        },
    )
    .await
}

/// Filters of a listing.
#[derive(Debug, Default)]
pub(crate) struct ListFilter {
    pub genre: Option<String>,
    pub language: Option<String>,
    pub owner: Option<Uuid>,
    pub tag: Option<String>,
    pub status: Option<VideoStatus>,
    pub search: Option<String>,
    pub limit: u32,
    pub after: Option<(i64, Uuid)>,
}

/// Encodes the position after `video` as an opaque cursor.
pub(crate) fn cursor_after(video: &Video) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", video.created_at.timestamp_millis(), video.id))
}

/// Decodes a cursor from [`cursor_after`].
pub(crate) fn parse_cursor(cursor: &str) -> Option<(i64, Uuid)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (ms, id) = raw.split_once(':')?;
    Some((ms.parse().ok()?, Uuid::parse_str(id).ok()?))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A bound parameter of a dynamically built query.
enum Param {
    Text(String),
    Int(i64),
}

/// Numbered placeholders for the parameters of a query being built.
#[derive(Default)]
struct Params(Vec<Param>);

impl Params {
    fn text(&mut self, value: impl Into<String>) -> String {
        self.0.push(Param::Text(value.into()));
        format!("${}", self.0.len())
    }

    fn int(&mut self, value: i64) -> String {
        self.0.push(Param::Int(value));
        format!("${}", self.0.len())
    }
}

/// One page of videos `caller` may see, newest first, and whether there is
/// a next page.
pub(crate) async fn list(db: &Db, caller: Option<&Caller>, f: &ListFilter) -> ApiResult<(Vec<Video>, bool)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut p = Params::default();
    match caller {
        Some(c) if c.user.role == Role::Admin => {}
        Some(c) => clauses.push(format!(
            "(v.visibility = 'public' OR v.owner_id = {})",
            p.text(c.user.id.to_string())
        )),
        None => clauses.push("v.visibility = 'public'".into()),
    }
    if let Some(g) = &f.genre {
        clauses.push(format!("v.genre = {}", p.text(g)));
    }
    if let Some(l) = &f.language {
        clauses.push(format!("v.language = {}", p.text(l)));
    }
    if let Some(o) = f.owner {
        clauses.push(format!("v.owner_id = {}", p.text(o.to_string())));
    }
    if let Some(s) = f.status {
        clauses.push(format!("v.status = {}", p.text(s.as_str())));
    }
    if let Some(t) = &f.tag {
        let t = p.text(t.trim().to_lowercase());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM video_tags t WHERE t.video_id = v.id AND t.tag = {t})"
        ));
    }
    if let Some(q) = &f.search {
        let pattern = p.text(format!("%{}%", like_literal(&q.to_lowercase())));
        clauses.push(format!(
            "(LOWER(v.title) LIKE {pattern} ESCAPE '\\' OR LOWER(v.description) LIKE {pattern} ESCAPE '\\')"
        ));
    }
    if let Some((ms, id)) = f.after {
        let (ms, id) = (p.int(ms), p.text(id.to_string()));
        clauses.push(format!(
            "(v.created_at < {ms} OR (v.created_at = {ms} AND v.id < {id}))"
        ));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {VIDEO_COLUMNS} FROM videos v {where_sql} ORDER BY v.created_at DESC, v.id DESC LIMIT {}",
        f.limit + 1
    );
    let mut query = sqlx::query(&sql);
    for param in p.0 {
        query = match param {
            Param::Text(t) => query.bind(t),
            Param::Int(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(&db.pool).await?;
    let more = rows.len() > f.limit as usize;
    let mut videos = rows
        .iter()
        .take(f.limit as usize)
        .map(video_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    attach_tags(db, &mut videos).await?;
    Ok((videos, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_literal("100%_off\\"), "100\\%\\_off\\\\");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        let c = URL_SAFE_NO_PAD.encode(format!("1700000000000:{id}"));
        assert_eq!(parse_cursor(&c), Some((1_700_000_000_000, id)));
        assert_eq!(parse_cursor("not a cursor"), None);
        assert_eq!(parse_cursor(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }
}
