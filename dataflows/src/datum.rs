//! The values a view's rows are made of.
//!
//! Every view is arranged as `(key row, value row)` of [`Datum`]s, so one
//! peek path, one transport between processes and one SQL mapping serve all
//! of them. Data inside a dataflow must be totally ordered, so floats are
//! wrapped in [`F64`], ordered by `total_cmp`.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One row: the key columns or the value columns of a view.
pub type Row = Vec<Datum>;

/// An `f64` with a total order (IEEE 754 `totalOrder`), so it can live in a
/// differential collection.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(F64),
    /// Text.
    Text(String),
    /// A UUID (video, user and session ids).
    Uuid(Uuid),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A list of text values.
    List(Vec<String>),
}

impl Datum {
    /// A float datum.
    pub fn float(v: f64) -> Self {
        Self::Float(F64(v))
    }

    /// Text from a `&str`.
    pub fn text(v: &str) -> Self {
        Self::Text(v.to_string())
    }

    /// `Null` for `None`, else what `f` makes of the value.
    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Datum) -> Self {
        v.map_or(Datum::Null, f)
    }

    /// The value as JSON, as the HTTP interface shows it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Datum::Null => J::Null,
            Datum::Bool(b) => J::Bool(*b),
            Datum::Int(i) => J::from(*i),
            Datum::Float(f) => serde_json::Number::from_f64(f.0).map_or(J::Null, J::Number),
            Datum::Text(s) => J::String(s.clone()),
            Datum::Uuid(u) => J::String(u.to_string()),
            Datum::Timestamp(ms) => J::String(format_timestamp(*ms)),
            Datum::List(items) => J::Array(items.iter().cloned().map(J::String).collect()),
        }
    }

    /// Parses `text` as a value of column type `ty` (keys given in URLs).
    pub fn parse(ty: ColumnType, text: &str) -> Result<Datum, String> {
        let bad = |what: &str| format!("{text:?} is not {what}");
        Ok(match ty {
            ColumnType::Bool => Datum::Bool(text.parse().map_err(|_| bad("a boolean"))?),
            ColumnType::Int => Datum::Int(text.parse().map_err(|_| bad("an integer"))?),
            ColumnType::Float => Datum::float(text.parse().map_err(|_| bad("a number"))?),
            ColumnType::Text => Datum::text(text),
            ColumnType::Uuid => Datum::Uuid(text.parse().map_err(|_| bad("a UUID"))?),
            ColumnType::Timestamp => Datum::Timestamp(text.parse().map_err(|_| bad("milliseconds since 1970"))?),
            ColumnType::TextList => return Err("list columns are not keys".into()),
        })
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => f.write_str("NULL"),
            Datum::Bool(b) => write!(f, "{b}"),
            Datum::Int(i) => write!(f, "{i}"),
            Datum::Float(v) => write!(f, "{}", v.0),
            Datum::Text(s) => f.write_str(s),
            Datum::Uuid(u) => write!(f, "{u}"),
            Datum::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
            Datum::List(items) => write!(f, "{{{}}}", items.join(",")),
        }
    }
}

/// RFC 3339 with milliseconds, UTC, without pulling a date library into
/// the dataflows (civil-from-days, Howard Hinnant's algorithm).
pub fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A column's type; the SQL layer maps these to Arrow and PostgreSQL types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    /// `bool`.
    Bool,
    /// `int8`.
    Int,
    /// `float8`.
    Float,
    /// `text`.
    Text,
    /// A UUID (shown as text).
    Uuid,
    /// `timestamptz`, held as milliseconds.
    Timestamp,
    /// `text[]`.
    TextList,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_timestamp(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn floats_order_totally() {
        let mut v = [Datum::float(2.0), Datum::float(-1.0), Datum::float(0.5)];
        v.sort();
        assert_eq!(v, [Datum::float(-1.0), Datum::float(0.5), Datum::float(2.0)]);
    }
}
