//! `SUBSCRIBE`: a view's rows, then its changes as they happen.
//!
//! ```sql
//! SUBSCRIBE video_status;
//! SUBSCRIBE TO (SELECT video_id, status, progress_pct FROM video_status
//!               WHERE video_id = '…') AS OF 1795665122030;
//! ```
//!
//! The answer's columns are `at` (the change's time, ms), `progressed`,
//! `diff`, then the subscribed columns. It starts with the rows at the
//! statement's time (each with `diff` 1, or more for equal rows), then
//! every change after it — a new row with `diff` +1, a row that went with
//! −1, an updated row as both — in time order. Rows with `progressed` true
//! are progress markers: every change before their `at` has been sent, so
//! a client can act on a consistent state. As in Materialize, whose
//! statement this is.
//!
//! What can be subscribed to: a view, or a `SELECT` of columns (or
//! expressions of them) of one view with a `WHERE` — per-row work, which
//! applies to changes as it does to rows. Equality and `IN` on the view's
//! first key column become key lookups, as in queries. Aggregates, joins,
//! `ORDER BY` and `LIMIT` are refused: they are not maintained
//! incrementally here.
//!
//! The caller's rights apply to every change as to every row of a query.
//! They are re-read every [`REFRESH`]. A creator's new videos join the
//! subscription as they are created: the rows of videos that became
//! visible are sent (with `diff` +1 at the last completed time) before the
//! next progress marker. Rights that shrink (a role changed, a video
//! given up) end the subscription with an error: the client subscribes
//! again under its rights of now.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, BooleanArray, BooleanBuilder, Int64Array, Int64Builder};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::DFSchemaRef;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use futures::future::BoxFuture;
use reelflow_dataflows::{Datum, PeekClient, Row, Selector, SubscribeEvent, Subscription, Time, Update, View};
use uuid::Uuid;

use crate::access::Principal;
use crate::error::{SqlError, sqlstate};
use crate::provider::{ViewTable, pinned_keys};
use crate::tables;

/// How often a subscription re-reads its caller's rights.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Re-reads the caller's rights.
pub type RefreshPrincipal = Arc<dyn Fn() -> BoxFuture<'static, Result<Principal, String>> + Send + Sync>;

/// The statement after `SUBSCRIBE [TO]`, if `sql` is a subscription.
pub fn target(sql: &str) -> Option<&str> {
    let trimmed = sql.trim_start();
    let word = trimmed.get(..9)?;
    if !word.eq_ignore_ascii_case("subscribe") || trimmed[9..].chars().next().is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    let rest = trimmed[9..].trim_start();
    let rest = match rest.get(..3) {
        Some(to) if to.eq_ignore_ascii_case("to ") || to.eq_ignore_ascii_case("to(") => rest[2..].trim_start(),
        _ => rest,
    };
    Some(rest)
}

/// The inner query of a subscription target: a view's name, or a
/// parenthesised `SELECT`.
pub(crate) fn inner_query(target: &str) -> Result<String, SqlError> {
    let target = target.trim().trim_end_matches(';').trim_end();
    if let Some(inner) = target.strip_prefix('(') {
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| SqlError::syntax("SUBSCRIBE TO ( … ) is missing its closing parenthesis", None))?;
        return Ok(inner.to_string());
    }
    if target.is_empty()
        || !target
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '"')
    {
        return Err(SqlError::syntax(
            format!("SUBSCRIBE takes a view or a parenthesised SELECT, not {target:?}"),
            None,
        )
        .with_hint("SUBSCRIBE video_status, or SUBSCRIBE TO (SELECT video_id, status FROM video_status WHERE …)"));
    }
    Ok(format!("SELECT * FROM {target}"))
}

/// A subscription, planned: which view and rows it reads, and what it
/// makes of each row.
pub(crate) struct Plan {
    view: View,
    selector: Selector,
    filter: Option<Arc<dyn PhysicalExpr>>,
    columns: Vec<Arc<dyn PhysicalExpr>>,
    /// The subscribed columns.
    schema: SchemaRef,
}

fn unsupported(what: &str) -> SqlError {
    SqlError::new(
        sqlstate::NOT_SUPPORTED,
        format!("SUBSCRIBE cannot follow {what}: only columns of one view, with a WHERE, are kept up to date"),
    )
    .with_hint("subscribe to the view (or a SELECT of its columns with a WHERE) and aggregate on the client, or run the query again")
}

/// Plans the `SELECT` of a subscription with DataFusion and checks its
/// shape.
pub(crate) fn plan(state: &SessionState, logical: &LogicalPlan) -> Result<Plan, SqlError> {
    let mut node = logical;
    let mut projection = None;
    let mut predicates: Vec<&Expr> = Vec::new();
    let (view, scan_schema): (View, DFSchemaRef) = loop {
        match node {
            LogicalPlan::Projection(p) => {
                if projection.is_some() || !predicates.is_empty() {
                    return Err(unsupported("a subquery"));
                }
                projection = Some(p);
                node = p.input.as_ref();
            }
            LogicalPlan::Filter(f) => {
                predicates.extend(split_conjunction(&f.predicate));
                node = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("a LIMIT"));
                }
                predicates.extend(scan.filters.iter());
                let provider = source_as_provider(&scan.source).map_err(SqlError::from)?;
                let table = provider
                    .downcast_ref::<ViewTable>()
                    .ok_or_else(|| unsupported("a catalog table"))?;
                if scan.projection.is_some() {
                    return Err(unsupported("a projected scan"));
                }
                break (table.view(), Arc::clone(&scan.projected_schema));
            }
            LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) => return Err(unsupported("an aggregate")),
            LogicalPlan::Join(_) | LogicalPlan::Union(_) => return Err(unsupported("a join or a union")),
            LogicalPlan::Sort(_) => return Err(unsupported("ORDER BY")),
            LogicalPlan::Limit(_) => return Err(unsupported("a LIMIT")),
            LogicalPlan::Distinct(_) => return Err(unsupported("DISTINCT")),
            other => return Err(unsupported(&format!("a {} step", other.display()))),
        }
    };
    let projection = projection.ok_or_else(|| unsupported("a statement without columns"))?;
    // Every filter is evaluated on the view's rows, whose schema the scan's
    // is; the projection's input may carry an alias's qualifier instead.
    let input_schema = projection.input.schema();
    let physical =
        |e: &Expr, schema: &DFSchemaRef| state.create_physical_expr(e.clone(), schema).map_err(SqlError::from);
    let filter = match predicates.iter().copied().cloned().reduce(Expr::and) {
        None => None,
        Some(p) => Some(physical(&p, input_schema).or_else(|_| physical(&p, &scan_schema))?),
    };
    let columns = projection
        .expr
        .iter()
        .map(|e| physical(e, input_schema))
        .collect::<Result<Vec<_>, _>>()?;
    let def = view.def();
    let first_key = &def.key[0];
    let mut keys: Option<Vec<Datum>> = None;
    for p in &predicates {
        if let Some(values) = pinned_keys(p, first_key.name, first_key.ty) {
            keys = Some(match keys {
                None => values,
                Some(k) => k.into_iter().filter(|d| values.contains(d)).collect(),
            });
        }
    }
    let selector = match keys {
        Some(k) if def.key.len() == 1 => Selector::Keys(k.into_iter().map(|d| vec![d]).collect()),
        Some(k) if k.len() == 1 => Selector::prefix(k),
        Some(k) if k.is_empty() => Selector::Keys(Vec::new()),
        _ => Selector::All,
    };
    Ok(Plan {
        view,
        selector,
        filter,
        columns,
        schema: Arc::new(projection.schema.as_arrow().clone()),
    })
}

impl Plan {
    /// The view and rows the subscription reads.
    pub(crate) fn source(&self) -> (View, Selector) {
        (self.view, self.selector.clone())
    }

    /// The answer's columns.
    pub(crate) fn output_schema(&self) -> SchemaRef {
        output_schema(&self.schema)
    }
}

/// What a subscription delivers to its client.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Changes, in time order: the columns `at`, `progressed` (false),
    /// `diff`, then the subscribed ones.
    Changes(RecordBatch),
    /// Every change before this time has been delivered.
    Progress(Time),
}

/// The columns of a subscription's answer: `at`, `progressed`, `diff`,
/// then `columns`.
pub fn output_schema(columns: &SchemaRef) -> SchemaRef {
    let mut fields = vec![
        Field::new("at", DataType::Int64, false),
        Field::new("progressed", DataType::Boolean, false),
        Field::new("diff", DataType::Int64, true),
    ];
    fields.extend(columns.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)));
    Arc::new(Schema::new(fields))
}

/// A progress marker as a row of `schema` (the subscribed columns null).
pub fn progress_row(schema: &SchemaRef, at: Time) -> Result<RecordBatch, SqlError> {
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![at as i64])),
        Arc::new(BooleanArray::from(vec![true])),
        Arc::new(Int64Array::from(vec![None::<i64>])),
    ];
    for f in schema.fields().iter().skip(3) {
        arrays.push(datafusion::arrow::array::new_null_array(f.data_type(), 1));
    }
    RecordBatch::try_new(Arc::clone(schema), arrays).map_err(|e| SqlError::new(sqlstate::INTERNAL, e.to_string()))
}

/// A running `SUBSCRIBE`, read with [`Subscribed::next`].
pub struct Subscribed {
    plan: Plan,
    /// The answer's columns.
    pub schema: SchemaRef,
    /// The time of the initial rows.
    pub as_of: Time,
    inner: Subscription,
    views: PeekClient,
    principal: Principal,
    refresh: Option<(RefreshPrincipal, Instant)>,
    /// Chunks ready to hand out.
    ready: std::collections::VecDeque<Chunk>,
    done: bool,
}

impl std::fmt::Debug for Subscribed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribed")
            .field("view", &self.plan.view)
            .field("as_of", &self.as_of)
            .finish()
    }
}

impl Subscribed {
    pub(crate) fn new(
        plan: Plan,
        inner: Subscription,
        views: PeekClient,
        principal: Principal,
        refresh: Option<RefreshPrincipal>,
    ) -> Self {
        Self {
            schema: output_schema(&plan.schema),
            as_of: inner.as_of,
            plan,
            inner,
            views,
            principal,
            refresh: refresh.map(|r| (r, Instant::now())),
            ready: Default::default(),
            done: false,
        }
    }

    /// The next chunk; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Chunk, SqlError>> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            if self.done {
                return None;
            }
            match self.inner.next().await {
                None => {
                    self.done = true;
                    return Some(Err(SqlError::new(sqlstate::CANCELED, "the dataflows are shut down")));
                }
                Some(SubscribeEvent::Error(e)) => {
                    self.done = true;
                    return Some(Err(SqlError::from(e)));
                }
                Some(SubscribeEvent::Updates(updates)) => {
                    let updates: Vec<Update> = updates
                        .into_iter()
                        .filter(|u| self.principal.may_read(self.plan.view, &u.key, &u.value))
                        .collect();
                    match self.changes(&updates) {
                        Ok(Some(batch)) => self.ready.push_back(Chunk::Changes(batch)),
                        Ok(None) => {}
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Some(SubscribeEvent::Progress(t)) => {
                    if let Err(e) = self.refresh_rights(t).await {
                        self.done = true;
                        return Some(Err(e));
                    }
                    self.ready.push_back(Chunk::Progress(t));
                }
            }
        }
    }

    /// Re-reads the caller's rights now and then; a creator's videos that
    /// became visible send their rows as they stand before `t` (every
    /// change before `t` has been delivered, none after).
    async fn refresh_rights(&mut self, t: Time) -> Result<(), SqlError> {
        let Some((refresh, last)) = &mut self.refresh else {
            return Ok(());
        };
        if last.elapsed() < REFRESH {
            return Ok(());
        }
        *last = Instant::now();
        let fresh = refresh()
            .await
            .map_err(|e| SqlError::new(sqlstate::INVALID_PASSWORD, e))?;
        // Rights may grow during a subscription (a creator's new videos join
        // it); if they shrink, rows already sent could no longer be
        // retracted correctly, so the subscription ends and the client
        // subscribes again with its rights of now.
        let new_videos: HashSet<Uuid> = match (&self.principal, &fresh) {
            (
                Principal::Creator {
                    user_id: a,
                    videos: old,
                },
                Principal::Creator {
                    user_id: b,
                    videos: new,
                },
            ) if a == b && old.is_subset(new) => new.difference(old).copied().collect(),
            (Principal::Admin, Principal::Admin) => HashSet::new(),
            (Principal::Viewer { user_id: a }, Principal::Viewer { user_id: b }) if a == b => HashSet::new(),
            _ => {
                return Err(SqlError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "the account's rights changed while the subscription ran",
                )
                .with_hint("subscribe again: the new subscription reads with the account's rights of now"));
            }
        };
        let before = std::mem::replace(&mut self.principal, fresh);
        if new_videos.is_empty() {
            return Ok(());
        }
        let at = t - 1;
        let peeked = self
            .views
            .peek(self.plan.view, self.plan.selector.clone(), Some(at))
            .await
            .map_err(SqlError::from)?;
        let joined: Vec<Update> = peeked
            .rows
            .into_iter()
            .filter(|(k, v)| self.principal.may_read(self.plan.view, k, v) && !before.may_read(self.plan.view, k, v))
            .map(|(key, value)| Update {
                time: at,
                diff: 1,
                key,
                value,
            })
            .collect();
        if let Some(batch) = self.changes(&joined)? {
            self.ready.push_back(Chunk::Changes(batch));
        }
        Ok(())
    }

    /// `updates` as answer rows: the subscription's filter and columns
    /// applied to each; `None` when none is left.
    fn changes(&self, updates: &[Update]) -> Result<Option<RecordBatch>, SqlError> {
        if updates.is_empty() {
            return Ok(None);
        }
        let internal = |e: &dyn std::fmt::Display| SqlError::new(sqlstate::INTERNAL, e.to_string());
        let rows: Vec<(Row, Row)> = updates.iter().map(|u| (u.key.clone(), u.value.clone())).collect();
        let mut at = Int64Builder::with_capacity(updates.len());
        let mut diff = Int64Builder::with_capacity(updates.len());
        let mut progressed = BooleanBuilder::with_capacity(updates.len());
        for u in updates {
            at.append_value(u.time as i64);
            diff.append_value(u.diff as i64);
            progressed.append_value(false);
        }
        let view_rows = tables::batch(self.plan.view, &rows, None).map_err(|e| internal(&e))?;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(at.finish()),
            Arc::new(progressed.finish()),
            Arc::new(diff.finish()),
        ];
        for c in &self.plan.columns {
            arrays.push(
                c.evaluate(&view_rows)
                    .and_then(|v| v.into_array(view_rows.num_rows()))
                    .map_err(SqlError::from)?,
            );
        }
        let mut batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(|e| internal(&e))?;
        if let Some(filter) = &self.plan.filter {
            let keep = filter
                .evaluate(&view_rows)
                .and_then(|v| v.into_array(view_rows.num_rows()))
                .map_err(SqlError::from)?;
            let keep = keep
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| SqlError::new(sqlstate::DATA, "the WHERE of a subscription must be true or false"))?;
            batch = filter_record_batch(&batch, keep).map_err(|e| internal(&e))?;
        }
        Ok((batch.num_rows() > 0).then_some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_statements_are_recognised() {
        assert_eq!(target("SUBSCRIBE video_status"), Some("video_status"));
        assert_eq!(target("  subscribe to video_stats;"), Some("video_stats;"));
        assert_eq!(target("SUBSCRIBE TO(SELECT 1)"), Some("(SELECT 1)"));
        assert_eq!(target("SUBSCRIBE (SELECT 1)"), Some("(SELECT 1)"));
        assert_eq!(target("SELECT 1"), None);
        assert_eq!(target("subscribers"), None);
        assert_eq!(inner_query("video_status").unwrap(), "SELECT * FROM video_status");
        assert_eq!(inner_query("(SELECT a FROM b)").unwrap(), "SELECT a FROM b");
        assert!(inner_query("video_status WHERE x").is_err());
        assert!(inner_query("(SELECT a FROM b").is_err());
    }
}
