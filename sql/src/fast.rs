//! The fast path for the statement apps and dashboards send most:
//! `SELECT <columns> FROM <view> WHERE <key> = <value or $n>` on a view
//! whose key is one column (`video_stats`, `qoe`, `video_status`, …).
//!
//! DataFusion plans such a statement once; the engine keeps what the plan
//! says (the view, the columns, where the key's value comes from) and from
//! then on answers it straight from the arrangement: one key lookup at the
//! statement's time, the caller's row access applied exactly as the table
//! provider applies it, the columns projected into the schema DataFusion
//! gave. No parse, optimisation or physical plan per execution — what
//! Materialize calls a fast-path peek. Any other shape goes through
//! DataFusion, as does anything the fast path cannot answer identically.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use reelflow_dataflows::{Datum, PeekClient, PeekError, Selector, Time, View};

use crate::access::Principal;
use crate::provider::{ViewTable, literal_datum};
use crate::tables;

/// Where the key's value comes from.
#[derive(Debug, Clone)]
enum KeyValue {
    Literal(ScalarValue),
    /// The statement's parameter with this index (`$1` is 0).
    Param(usize),
}

/// A statement the fast path answers.
#[derive(Debug)]
pub struct FastPlan {
    view: View,
    projection: Vec<usize>,
    key: KeyValue,
    schema: SchemaRef,
}

/// The fast plan of `plan` (DataFusion's unoptimised logical plan), if it
/// has the one shape the fast path answers.
pub fn plan(plan: &LogicalPlan) -> Option<FastPlan> {
    let LogicalPlan::Projection(projection) = plan else {
        return None;
    };
    let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
        return None;
    };
    let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
        return None;
    };
    if !scan.filters.is_empty() || scan.fetch.is_some() || scan.projection.is_some() {
        return None;
    }
    let provider = source_as_provider(&scan.source).ok()?;
    let view = provider.downcast_ref::<ViewTable>()?.view();
    let def = view.def();
    if def.key.len() != 1 {
        return None;
    }
    let key_column = def.key[0].name;
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = &filter.predicate
    else {
        return None;
    };
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == key_column);
    let value = |e: &Expr| match e {
        Expr::Literal(v, _) => Some(KeyValue::Literal(v.clone())),
        Expr::Placeholder(p) => {
            let n: usize = p.id.strip_prefix('$')?.parse().ok()?;
            Some(KeyValue::Param(n.checked_sub(1)?))
        }
        _ => None,
    };
    let key = if is_key(left) {
        value(right)?
    } else if is_key(right) {
        value(left)?
    } else {
        return None;
    };
    let schema = tables::schema_of(view);
    let columns = projection
        .expr
        .iter()
        .map(|e| match e {
            Expr::Column(c) => schema.index_of(&c.name).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()?;
    Some(FastPlan {
        view,
        projection: columns,
        key,
        schema: Arc::new(plan.schema().as_arrow().clone()),
    })
}

impl FastPlan {
    /// The key to look up with `params`: `Some(None)` when the value cannot
    /// be of the key's type (the statement matches no row, as in
    /// DataFusion); `None` when the fast path cannot tell (a parameter
    /// missing).
    fn key(&self, params: &[ScalarValue]) -> Option<Option<Datum>> {
        let value = match &self.key {
            KeyValue::Literal(v) => v,
            KeyValue::Param(i) => params.get(*i)?,
        };
        Some(literal_datum(self.view.def().key[0].ty, value))
    }

    /// Answers the statement at `as_of` as `principal`; `None` when it
    /// must go through DataFusion instead.
    pub async fn run(
        &self,
        views: &PeekClient,
        params: &[ScalarValue],
        as_of: Time,
        principal: &Principal,
    ) -> Option<Result<RecordBatch, PeekError>> {
        let key = self.key(params)?;
        let mut rows = match key {
            Some(key) if !principal.sees_nothing_of(self.view) => {
                match views
                    .peek(self.view, Selector::Keys(vec![vec![key]]), Some(as_of))
                    .await
                {
                    Ok(peeked) => peeked.rows,
                    Err(e) => return Some(Err(e)),
                }
            }
            _ => Vec::new(),
        };
        rows.retain(|(k, v)| principal.may_read(self.view, k, v));
        let batch = tables::batch(self.view, &rows, Some(&self.projection)).ok()?;
        RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())
            .ok()
            .map(Ok)
    }
}
