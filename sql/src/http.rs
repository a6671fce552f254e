//! `POST /v1/sql`: one statement in, its rows out, as JSON (the default),
//! CSV (`Accept: text/csv`) or an Arrow IPC stream (`Accept:
//! application/vnd.apache.arrow.stream`). Every answer says the time it was
//! read at: `as_of` in JSON, the `Reelflow-As-Of` header in all three.
//! Results are cut at a row limit (`truncated` in JSON,
//! `Reelflow-Truncated: true` otherwise). A `SUBSCRIBE` asked for with
//! `Accept: text/event-stream` streams its changes as server-sent events.
//!
//! The body is `{"query": "SELECT …"}` or the bare statement as
//! `text/plain`. Errors are problem documents carrying the SQLSTATE, the
//! position and a hint.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};

use crate::access::Principal;
use crate::engine::{QueryOutput, SqlEngine, split_as_of};
use crate::error::{SqlError, sqlstate};
use crate::subscribe::{Chunk, RefreshPrincipal, Subscribed};
use futures::StreamExt;

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `text/csv` with a header row.
    Csv,
    /// `application/vnd.apache.arrow.stream`.
    Arrow,
    /// `text/event-stream`: server-sent events, for `SUBSCRIBE`.
    EventStream,
}

/// The format `Accept` asks for; `None` if it asks for none we write.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept else {
        return Some(Format::Json);
    };
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => return Some(Format::Json),
            "text/csv" | "text/*" => return Some(Format::Csv),
            "application/vnd.apache.arrow.stream" => return Some(Format::Arrow),
            "text/event-stream" => return Some(Format::EventStream),
            _ => {}
        }
    }
    None
}

/// The statement of a request body.
pub fn statement(headers: &HeaderMap, body: &Bytes) -> Result<String, SqlError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| SqlError::new(sqlstate::DATA, "the body is not UTF-8"))?;
    match essence.as_str() {
        "text/plain" | "application/sql" => Ok(text.to_string()),
        "application/json" => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| SqlError::new(sqlstate::DATA, format!("the body is not JSON: {e}")))?;
            v.get("query").and_then(Value::as_str).map(String::from).ok_or_else(|| {
                SqlError::new(sqlstate::DATA, "the body needs \"query\": the SQL statement")
                    .with_hint(r#"{"query": "SELECT * FROM video_stats LIMIT 10"}"#)
            })
        }
        other => Err(SqlError::new(
            sqlstate::DATA,
            format!("send the statement as application/json or text/plain, not {other}"),
        )),
    }
}

/// The HTTP status of a statement's error.
fn status_of(e: &SqlError) -> StatusCode {
    match e.code {
        sqlstate::CANCELED => StatusCode::GATEWAY_TIMEOUT,
        sqlstate::NOT_READY => StatusCode::SERVICE_UNAVAILABLE,
        sqlstate::OUT_OF_MEMORY | sqlstate::LIMIT | sqlstate::TOO_COMPLEX => StatusCode::UNPROCESSABLE_ENTITY,
        sqlstate::TOO_MANY => StatusCode::TOO_MANY_REQUESTS,
        sqlstate::INTERNAL => StatusCode::INTERNAL_SERVER_ERROR,
        sqlstate::READ_ONLY => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The body of the problem document for `e`.
fn problem_body(e: &SqlError) -> Value {
    let status = status_of(e);
    let mut body = json!({
        "type": "https://reelflow.dev/problems/sql",
        "title": "SQL Error",
        "status": status.as_u16(),
        "detail": e.message,
        "sqlstate": e.code,
    });
    if let Some(p) = e.position {
        body["position"] = json!(p);
    }
    if let Some(h) = &e.hint {
        body["hint"] = json!(h);
    }
    body
}

/// A problem document (RFC 9457) for `e`.
pub fn problem(e: &SqlError) -> Response {
    let mut response = (status_of(e), problem_body(e).to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Runs the statement of a request and writes its answer. `refresh`
/// re-reads the caller's rights while a subscription runs.
pub async fn answer(
    engine: &SqlEngine,
    principal: Principal,
    refresh: Option<RefreshPrincipal>,
    headers: &HeaderMap,
    body: &Bytes,
    row_limit: usize,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let not_acceptable = |message: &str| {
        let mut r = problem(&SqlError::new(sqlstate::DATA, message));
        *r.status_mut() = StatusCode::NOT_ACCEPTABLE;
        r
    };
    let Some(format) = negotiate(accept) else {
        return not_acceptable(
            "Accept names no format this endpoint writes: application/json, text/csv, application/vnd.apache.arrow.stream, or text/event-stream for SUBSCRIBE",
        );
    };
    let sql = match statement(headers, body) {
        Ok(s) => s,
        Err(e) => return problem(&e),
    };
    let subscription = split_as_of(&sql)
        .ok()
        .is_some_and(|s| crate::subscribe::target(s.sql).is_some());
    if format == Format::EventStream {
        if !subscription {
            return not_acceptable("text/event-stream answers SUBSCRIBE statements; ask for application/json");
        }
        return match engine.subscribe(&sql, principal, refresh).await {
            Ok(sub) => events(sub),
            Err(e) => problem(&e),
        };
    }
    match engine.query(&sql, principal).await {
        Ok(out) => write(out, format, row_limit),
        Err(e) => problem(&e),
    }
}

/// The first `limit` rows of `out`, and whether rows were cut.
fn cut(out: &QueryOutput, limit: usize) -> (Vec<RecordBatch>, bool) {
    let mut left = limit;
    let mut kept = Vec::new();
    let mut truncated = false;
    for b in &out.batches {
        if left == 0 {
            truncated |= b.num_rows() > 0;
            continue;
        }
        if b.num_rows() > left {
            kept.push(b.slice(0, left));
            truncated = true;
            left = 0;
        } else {
            left -= b.num_rows();
            kept.push(b.clone());
        }
    }
    (kept, truncated)
}

fn write(out: QueryOutput, format: Format, row_limit: usize) -> Response {
    let (batches, truncated) = cut(&out, row_limit);
    let written: Result<(Vec<u8>, &'static str), String> = match format {
        Format::Json => Ok((
            json_body(&out, &batches, truncated).to_string().into_bytes(),
            "application/json",
        )),
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            batches
                .iter()
                .try_for_each(|b| w.write(b))
                .map(|()| (w.into_inner(), "text/csv; charset=utf-8"))
                .map_err(|e| e.to_string())
        }
        Format::EventStream => Err("an event stream answers only SUBSCRIBE".into()),
        Format::Arrow => {
            let result = (|| {
                let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &out.schema)?;
                for b in &batches {
                    w.write(b)?;
                }
                w.finish()?;
                w.into_inner()
            })();
            result
                .map(|bytes| (bytes, "application/vnd.apache.arrow.stream"))
                .map_err(|e| e.to_string())
        }
    };
    let (bytes, content_type) = match written {
        Ok(w) => w,
        Err(e) => return problem(&SqlError::new(sqlstate::INTERNAL, format!("writing the answer: {e}"))),
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("reelflow-as-of", HeaderValue::from(out.as_of));
    if truncated {
        h.insert("reelflow-truncated", HeaderValue::from_static("true"));
    }
    response
}

/// Progress markers without changes are sent at most this often.
const QUIET_PROGRESS: std::time::Duration = std::time::Duration::from_secs(1);

/// A subscription as server-sent events:
///
/// - `subscribed`: `{"as_of", "columns": [{"name", "type"}]}`, first;
/// - `changes`: `{"changes": [{"at", "diff", "row": {column: value}}]}`,
///   in time order (the first holds the rows at `as_of`);
/// - `progress`: `{"at"}`: every change before `at` has been sent;
/// - `error`: a problem document; the stream ends.
fn events(sub: Subscribed) -> Response {
    use axum::response::sse::{Event, Sse};
    let columns: Vec<Value> = sub
        .schema
        .fields()
        .iter()
        .skip(3)
        .map(|f| json!({"name": f.name(), "type": type_name(f.data_type())}))
        .collect();
    let first = Event::default()
        .event("subscribed")
        .data(json!({"as_of": sub.as_of, "columns": columns}).to_string());
    struct State {
        sub: Subscribed,
        last_progress: std::time::Instant,
        changed: bool,
        done: bool,
    }
    let state = State {
        sub,
        last_progress: std::time::Instant::now(),
        changed: true,
        done: false,
    };
    let rest = futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let event = match st.sub.next().await {
                Some(Ok(Chunk::Changes(batch))) => {
                    st.changed = true;
                    let names: Vec<&String> = batch.schema_ref().fields().iter().map(|f| f.name()).collect();
                    let changes: Vec<Value> = (0..batch.num_rows())
                        .map(|r| {
                            let row: serde_json::Map<String, Value> = names
                                .iter()
                                .enumerate()
                                .skip(3)
                                .map(|(c, name)| ((*name).clone(), cell(batch.column(c), r)))
                                .collect();
                            json!({"at": cell(batch.column(0), r), "diff": cell(batch.column(2), r), "row": row})
                        })
                        .collect();
                    Event::default()
                        .event("changes")
                        .data(json!({"changes": changes}).to_string())
                }
                Some(Ok(Chunk::Progress(at))) => {
                    if !st.changed && st.last_progress.elapsed() < QUIET_PROGRESS {
                        continue;
                    }
                    st.changed = false;
                    st.last_progress = std::time::Instant::now();
                    Event::default().event("progress").data(json!({"at": at}).to_string())
                }
                Some(Err(e)) => {
                    st.done = true;
                    Event::default().event("error").data(problem_body(&e).to_string())
                }
                None => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(event), st));
        }
    });
    let stream = futures::stream::once(async move { Ok(first) }).chain(rest);
    // Comments every 15 s keep proxies from cutting a quiet stream.
    let mut response = Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The PostgreSQL-style name of an Arrow type, for the `columns` list.
pub fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Boolean => "bool".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "int2".into(),
        DataType::Int32 | DataType::UInt16 => "int4".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "int8".into(),
        DataType::Float16 | DataType::Float32 => "float4".into(),
        DataType::Float64 => "float8".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", type_name(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

fn json_body(out: &QueryOutput, batches: &[RecordBatch], truncated: bool) -> Value {
    let columns: Vec<Value> = out
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": type_name(f.data_type())}))
        .collect();
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(Value::Array(b.columns().iter().map(|c| cell(c, r)).collect()));
        }
    }
    json!({
        "as_of": out.as_of,
        "as_of_time": reelflow_dataflows::format_timestamp(out.as_of as i64),
        "columns": columns,
        "rows": rows,
        "row_count": rows.len(),
        "truncated": truncated,
    })
}

/// One value as JSON: numbers, booleans and lists as themselves,
/// timestamps as RFC 3339, anything else as its text.
pub fn cell(array: &ArrayRef, row: usize) -> Value {
    use datafusion::arrow::datatypes::{
        Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
        UInt64Type,
    };
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => json!(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => json!(array.as_string::<i64>().value(row)),
        DataType::Utf8View => json!(array.as_string_view().value(row)),
        DataType::Timestamp(unit, _) => {
            let ms = timestamp_ms(array, row, *unit);
            json!(reelflow_dataflows::format_timestamp(ms))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            Value::Array((0..list.len()).map(|i| cell(&list, i)).collect())
        }
        _ => {
            let options = FormatOptions::default();
            ArrayFormatter::try_new(array.as_ref(), &options)
                .map(|f| json!(f.value(row).to_string()))
                .unwrap_or(Value::Null)
        }
    }
}

/// A timestamp cell in milliseconds.
pub fn timestamp_ms(array: &ArrayRef, row: usize, unit: TimeUnit) -> i64 {
    use datafusion::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000,
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(negotiate(None), Some(Format::Json));
        assert_eq!(negotiate(Some("text/csv")), Some(Format::Csv));
        assert_eq!(
            negotiate(Some("application/vnd.apache.arrow.stream")),
            Some(Format::Arrow)
        );
        assert_eq!(negotiate(Some("image/png, */*;q=0.1")), Some(Format::Json));
        assert_eq!(negotiate(Some("image/png")), None);
    }
}
