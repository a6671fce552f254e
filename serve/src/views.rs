//! `/v1/views`: the live views over HTTP — the list with their columns, and
//! one view's rows (whole, by key, or by key range) at the latest readable
//! time or `as_of` a recent one. Each answer says which time it read.
//!
//! The same reads are served twice: by `reelflow dataflow` on its own,
//! cluster-internal listener (no accounts there), and on the public API for
//! admins — answered in process by `reelflow up`, forwarded to the dataflow
//! service (`sql.upstream`, through [`crate::upstream`]) by `reelflow
//! serve`. Row-level access for creators and viewers is the SQL layer's.

use axum::Json;
use axum::extract::{Query, State};
use reelflow_dataflows::ColumnType;
use reelflow_dataflows::{Datum, PeekClient, PeekError, Row, Selector, VIEWS, View, ViewDef};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::problem::{ApiError, ApiPath, ApiResult, FieldError, Problem};
use crate::state::AppState;

/// The routes of `/v1/views` on the public API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_views))
        .routes(routes!(get_view))
}

/// Which rows to read.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// A whole key: the key columns' values, comma-separated (`video_id`, or `user_id,video_id`).
    pub key: Option<String>,
    /// Rows whose key starts with these values (the leading key columns, comma-separated).
    pub prefix: Option<String>,
    /// Keys from this one on (inclusive; leading key columns, comma-separated).
    pub from: Option<String>,
    /// Keys before this one (exclusive; leading key columns, comma-separated).
    pub to: Option<String>,
    /// Read at this time (ms since 1970) within the retained history.
    pub as_of: Option<u64>,
    /// Most rows to return [default: 1000, at most 100000].
    pub limit: Option<usize>,
}

/// The views and their columns.
pub fn list() -> Value {
    json!({ "views": VIEWS.iter().map(describe).collect::<Vec<_>>() })
}

fn describe(def: &ViewDef) -> Value {
    json!({
        "name": def.name,
        "doc": def.doc,
        "key": def.key.iter().map(|c| c.name).collect::<Vec<_>>(),
        "columns": def.columns().collect::<Vec<_>>(),
    })
}

fn parse_key(def: &ViewDef, text: &str, field: &str, prefix_ok: bool) -> Result<Row, ApiError> {
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > def.key.len() || (!prefix_ok && parts.len() != def.key.len()) {
        return Err(ApiError::Validation(vec![FieldError::new(
            field,
            format!(
                "{} takes {} key column(s): {}",
                def.name,
                def.key.len(),
                def.key.iter().map(|c| c.name).collect::<Vec<_>>().join(",")
            ),
        )]));
    }
    parts
        .iter()
        .zip(def.key)
        .map(|(p, col)| {
            Datum::parse(col.ty, p.trim())
                .map_err(|e| ApiError::Validation(vec![FieldError::new(field, format!("{}: {e}", col.name))]))
        })
        .collect()
}

/// The answer to a name that is no view.
fn unknown_view(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no view {name:?}; the views are {}",
        VIEWS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
    ))
}

/// Reads `name` as `query` says, from `client`.
pub async fn read(client: &PeekClient, name: &str, query: ViewQuery) -> ApiResult<Value> {
    let view = View::named(name).ok_or_else(|| unknown_view(name))?;
    let def = view.def();
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > 100_000 {
        return Err(ApiError::Validation(vec![FieldError::new(
            "limit",
            "must be between 1 and 100000",
        )]));
    }
    let given = [
        query.key.is_some(),
        query.prefix.is_some(),
        query.from.is_some() || query.to.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given > 1 {
        return Err(ApiError::BadRequest("give one of key, prefix or from/to".into()));
    }
    let selector = if let Some(key) = &query.key {
        Selector::Keys(vec![parse_key(def, key, "key", false)?])
    } else if let Some(prefix) = &query.prefix {
        Selector::prefix(parse_key(def, prefix, "prefix", true)?)
    } else if query.from.is_some() || query.to.is_some() {
        Selector::Range {
            from: query
                .from
                .as_deref()
                .map(|f| parse_key(def, f, "from", true))
                .transpose()?,
            to: query.to.as_deref().map(|t| parse_key(def, t, "to", true)).transpose()?,
        }
    } else {
        Selector::All
    };
    let peeked = client.peek(view, selector, query.as_of).await.map_err(|e| match e {
        PeekError::Compacted { .. } | PeekError::Future { .. } => {
            ApiError::Validation(vec![FieldError::new("as_of", e.to_string())])
        }
        PeekError::NotReady | PeekError::Timeout(_) | PeekError::ShutDown => ApiError::Unavailable(e.to_string()),
        PeekError::Internal { .. } | PeekError::TooSlow { .. } => ApiError::Internal(anyhow::anyhow!(e)),
    })?;
    let total = peeked.rows.len();
    let rows: Vec<Value> = peeked
        .rows
        .into_iter()
        .take(limit)
        .map(|(k, v)| {
            let mut obj = Map::new();
            for (col, datum) in def.columns().zip(k.iter().chain(v.iter())) {
                obj.insert(col.name.to_string(), datum.to_json());
            }
            Value::Object(obj)
        })
        .collect();
    Ok(json!({
        "view": def.name,
        "as_of": peeked.as_of,
        "as_of_time": reelflow_dataflows::format_timestamp(peeked.as_of as i64),
        "columns": def.columns().map(|c| json!({"name": c.name, "type": type_name(c.ty), "nullable": c.nullable})).collect::<Vec<_>>(),
        "rows": rows,
        "truncated": total > limit,
    }))
}

/// The column type's name, as every SQL front end names it.
fn type_name(ty: ColumnType) -> &'static str {
    reelflow_sql::tables::pg_type_names(ty).0
}

fn client(state: &AppState) -> ApiResult<&PeekClient> {
    state
        .views
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the dataflows do not run in this process".into()))
}

/// The live views and their columns (admins).
#[utoipa::path(get, path = "/v1/views", tag = "views", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn list_views(caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(list()))
}

/// One view's rows at one time (admins).
#[utoipa::path(get, path = "/v1/views/{name}", tag = "views", security(("bearer" = [])),
    params(("name" = String, Path, description = "view name"), ViewQuery),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn get_view(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    Query(query): Query<ViewQuery>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    caller.require_admin()?;
    if state.views.is_none()
        && let Some(upstream) = &state.upstream
    {
        // Only a view's own name goes into the upstream path: a decoded
        // `..%2Fmetrics` would otherwise reach the dataflow listener's
        // other routes. The service checks the query again.
        let view = View::named(&name).ok_or_else(|| unknown_view(&name))?;
        let query = raw.map(|q| format!("?{q}")).unwrap_or_default();
        return upstream.view(&format!("/v1/views/{}{query}", view.def().name)).await;
    }
    Ok(Json(read(client(&state)?, &name, query).await?).into_response())
}
