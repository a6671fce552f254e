//! A DataFusion `TableProvider` per live view. A scan peeks the view's
//! arrangement at the statement's timestamp (from the [`QueryScope`] the
//! engine puts in the session), keeps the rows the caller may read, and
//! hands DataFusion one in-memory batch of the projected columns.
//!
//! Pushdown: an equality or `IN` list on a view's first key column becomes
//! key lookups (one seek per key in the arrangement) instead of a scan; the
//! filter stays in the plan too (`Inexact`), so correctness never depends on
//! it. A `LIMIT` without filters cuts the rows before conversion.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use reelflow_dataflows::ColumnType;
use reelflow_dataflows::{Datum, PeekClient, Row, Selector, Time, View};

use crate::access::Principal;
use crate::tables;

/// What every scan of one statement shares: the time it reads at and who
/// is asking.
#[derive(Debug, Clone)]
pub struct QueryScope {
    /// The timestamp every table of the statement is read at.
    pub as_of: Time,
    /// The caller.
    pub principal: Principal,
}

/// One live view as a table.
#[derive(Debug)]
pub struct ViewTable {
    view: View,
    schema: SchemaRef,
    reader: PeekClient,
}

impl ViewTable {
    /// The table of `view`, read through `reader`.
    pub fn new(view: View, reader: PeekClient) -> Self {
        Self {
            view,
            schema: tables::schema_of(view),
            reader,
        }
    }

    /// The view this table reads.
    pub fn view(&self) -> View {
        self.view
    }

    fn first_key(&self) -> (&'static str, ColumnType) {
        let c = &self.view.def().key[0];
        (c.name, c.ty)
    }
}

/// `value` as a datum of type `ty`; `None` when it cannot be one (it then
/// matches no key).
pub(crate) fn literal_datum(ty: ColumnType, value: &ScalarValue) -> Option<Datum> {
    let text = match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        ScalarValue::Int64(Some(i)) => i.to_string(),
        ScalarValue::Int32(Some(i)) => i.to_string(),
        _ => return None,
    };
    Datum::parse(ty, &text).ok()
}

/// The key values a filter pins the first key column to: `Some(values)`
/// for `col = lit`, `lit = col` or `col IN (lits)`; `None` otherwise.
/// Values that cannot be of the column's type match nothing and are left
/// out (so `video_id = 'nope'` reads no row at all).
pub(crate) fn pinned_keys(filter: &Expr, column: &str, ty: ColumnType) -> Option<Vec<Datum>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let literal = |e: &Expr| match e {
        Expr::Literal(v, _) => Some(v.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let value = if is_column(left) {
                literal(right)?
            } else if is_column(right) {
                literal(left)?
            } else {
                return None;
            };
            Some(literal_datum(ty, &value).into_iter().collect())
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr) => {
            let values: Option<Vec<ScalarValue>> = list.list.iter().map(literal).collect();
            Some(values?.iter().filter_map(|v| literal_datum(ty, v)).collect())
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let (column, ty) = self.first_key();
        Ok(filters
            .iter()
            .map(|f| {
                if pinned_keys(f, column, ty).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scope = state
            .config()
            .get_extension::<QueryScope>()
            .ok_or_else(|| DataFusionError::Internal("a view was scanned outside a query".into()))?;
        let (column, ty) = self.first_key();
        // Every pinning filter narrows the keys; all must hold.
        let mut keys: Option<BTreeSet<Datum>> = None;
        for f in filters {
            if let Some(values) = pinned_keys(f, column, ty) {
                let values: BTreeSet<Datum> = values.into_iter().collect();
                keys = Some(match keys {
                    None => values,
                    Some(k) => k.intersection(&values).cloned().collect(),
                });
            }
        }
        let mut rows: Vec<(Row, Row)> = if scope.principal.sees_nothing_of(self.view) {
            Vec::new()
        } else {
            let selectors: Vec<Selector> = match keys {
                None => vec![Selector::All],
                Some(k) if k.is_empty() => Vec::new(),
                Some(k) if self.view.def().key.len() == 1 => {
                    vec![Selector::Keys(k.into_iter().map(|d| vec![d]).collect())]
                }
                Some(k) => k.into_iter().map(|d| Selector::prefix(vec![d])).collect(),
            };
            let mut rows = Vec::new();
            for selector in selectors {
                let peeked = self
                    .reader
                    .peek(self.view, selector, Some(scope.as_of))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                rows.extend(peeked.rows);
            }
            rows
        };
        rows.retain(|(k, v)| scope.principal.may_read(self.view, k, v));
        if let Some(n) = limit
            && filters.is_empty()
        {
            rows.truncate(n);
        }
        let batch = tables::batch(self.view, &rows, projection.map(Vec::as_slice))?;
        let schema = batch.schema();
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, in_list, lit};

    #[test]
    fn equality_and_in_lists_on_the_first_key_pin_keys() {
        let id = uuid::Uuid::new_v4();
        let eq = col("video_id").eq(lit(id.to_string()));
        assert_eq!(
            pinned_keys(&eq, "video_id", ColumnType::Uuid),
            Some(vec![Datum::Uuid(id)])
        );
        let flipped = lit(id.to_string()).eq(col("video_id"));
        assert_eq!(
            pinned_keys(&flipped, "video_id", ColumnType::Uuid),
            Some(vec![Datum::Uuid(id)])
        );
        let list = in_list(col("video_id"), vec![lit(id.to_string()), lit("not a uuid")], false);
        assert_eq!(
            pinned_keys(&list, "video_id", ColumnType::Uuid),
            Some(vec![Datum::Uuid(id)])
        );
        let negated = in_list(col("video_id"), vec![lit(id.to_string())], true);
        assert_eq!(pinned_keys(&negated, "video_id", ColumnType::Uuid), None);
        let other = col("views").eq(lit(3i64));
        assert_eq!(pinned_keys(&other, "video_id", ColumnType::Uuid), None);
        let range = col("video_id").gt(lit(id.to_string()));
        assert_eq!(pinned_keys(&range, "video_id", ColumnType::Uuid), None);
    }
}
