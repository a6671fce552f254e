//! The views as Arrow: each view's schema (its key columns, then its value
//! columns, as the architecture brief names them) and the conversion of
//! peeked rows into record batches.
//!
//! | view column type | Arrow | PostgreSQL |
//! |---|---|---|
//! | bool | Boolean | bool |
//! | int | Int64 | int8 |
//! | float | Float64 | float8 |
//! | text, uuid | Utf8 | text |
//! | timestamp | Timestamp(ms, UTC) | timestamptz |
//! | text list | List(Utf8) | text[] |

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use reelflow_dataflows::ColumnType;
use reelflow_dataflows::{Datum, Row, View};

/// How PostgreSQL names a view column's type: its short name (`int8`, as
/// `/v1/sql`, `/v1/views` and the wire protocol's types say it) and the
/// name `information_schema` and psql's `\d` show (`bigint`). The one
/// mapping every front end takes its names from: a uuid column travels as
/// `text`, so every front end calls it `text`.
pub fn pg_type_names(ty: ColumnType) -> (&'static str, &'static str) {
    match ty {
        ColumnType::Bool => ("bool", "boolean"),
        ColumnType::Int => ("int8", "bigint"),
        ColumnType::Float => ("float8", "double precision"),
        ColumnType::Text | ColumnType::Uuid => ("text", "text"),
        ColumnType::Timestamp => ("timestamptz", "timestamp with time zone"),
        ColumnType::TextList => ("text[]", "text[]"),
    }
}

/// The Arrow type of a view column type.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Text | ColumnType::Uuid => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ColumnType::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

/// The schema of `view`.
pub fn schema_of(view: View) -> SchemaRef {
    let fields: Vec<Field> = view
        .def()
        .columns()
        .map(|c| Field::new(c.name, arrow_type(c.ty), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Builds one column from the datums at `index` of every row.
fn column(ty: ColumnType, rows: &[(Row, Row)], key_len: usize, index: usize) -> ArrayRef {
    fn at(row: &(Row, Row), key_len: usize, index: usize) -> &Datum {
        let (k, v) = row;
        let d = if index < key_len {
            k.get(index)
        } else {
            v.get(index - key_len)
        };
        d.unwrap_or(&Datum::Null)
    }
    let at = |r| at(r, key_len, index);
    let n = rows.len();
    match ty {
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for r in rows {
                b.append_option(match at(r) {
                    Datum::Bool(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Int => {
            let mut b = Int64Builder::with_capacity(n);
            for r in rows {
                b.append_option(match at(r) {
                    Datum::Int(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Float => {
            let mut b = Float64Builder::with_capacity(n);
            for r in rows {
                b.append_option(match at(r) {
                    Datum::Float(v) => Some(v.0),
                    Datum::Int(v) => Some(*v as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Text | ColumnType::Uuid => {
            let mut b = StringBuilder::with_capacity(n, n * 36);
            for r in rows {
                match at(r) {
                    Datum::Null => b.append_null(),
                    Datum::Text(s) => b.append_value(s),
                    other => b.append_value(other.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => {
            let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
            for r in rows {
                b.append_option(match at(r) {
                    Datum::Timestamp(ms) => Some(*ms),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::TextList => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for r in rows {
                match at(r) {
                    Datum::List(items) => {
                        for item in items {
                            b.values().append_value(item);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// A record batch of `rows` of `view` holding the columns `projection`
/// (indexes into the view's columns; all of them when `None`).
pub fn batch(view: View, rows: &[(Row, Row)], projection: Option<&[usize]>) -> Result<RecordBatch, ArrowError> {
    let def = view.def();
    let columns: Vec<_> = def.columns().collect();
    let all: Vec<usize> = (0..columns.len()).collect();
    let wanted = projection.unwrap_or(&all);
    let schema = schema_of(view);
    let projected = Arc::new(schema.project(wanted)?);
    let arrays: Vec<ArrayRef> = wanted
        .iter()
        .map(|&i| column(columns[i].ty, rows, def.key.len(), i))
        .collect();
    RecordBatch::try_new_with_options(
        projected,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/v1/views` (from the view's column types) and `/v1/sql` (from the
    /// Arrow types of an answer) name every column type alike.
    #[test]
    fn every_front_end_names_a_column_type_alike() {
        use reelflow_dataflows::ColumnType::*;
        for ty in [Bool, Int, Float, Text, Uuid, Timestamp, TextList] {
            assert_eq!(crate::http::type_name(&arrow_type(ty)), pg_type_names(ty).0, "{ty:?}");
        }
    }

    #[test]
    fn every_view_converts_with_its_documented_columns() {
        for view in View::ALL {
            let schema = schema_of(view);
            let names: Vec<&str> = view.def().columns().map(|c| c.name).collect();
            let got: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(got, names);
            let b = batch(view, &[], None).expect("empty batch");
            assert_eq!(b.num_rows(), 0);
        }
        let rows = vec![(
            vec![Datum::Uuid(uuid::Uuid::nil())],
            vec![
                Datum::text("ready"),
                Datum::float(100.0),
                Datum::text("done"),
                Datum::Null,
                Datum::List(vec!["720p".into(), "360p".into()]),
                Datum::float(12.5),
                Datum::Timestamp(1_700_000_000_000),
            ],
        )];
        let b = batch(View::VideoStatus, &rows, Some(&[0, 5, 7])).expect("batch");
        assert_eq!(b.num_columns(), 3);
        assert_eq!(b.schema().field(1).name(), "renditions");
        let projected_none = batch(View::VideoStatus, &rows, Some(&[])).expect("count(*) batch");
        assert_eq!(projected_none.num_rows(), 1);
    }
}
