//! The SQL engine: one DataFusion session whose tables are the live views,
//! and the rules every statement runs under.
//!
//! - **One timestamp per statement**: before planning, the engine picks the
//!   time to read at — the latest one complete for every view, or the one
//!   an `AS OF <ms>` suffix names — and every scan of the statement reads
//!   there, so a join of two views never sees half an update. The answer
//!   says which time it read.
//! - **Read-only**: DDL, DML, `COPY`, `SET` and every other statement that
//!   is not a query are refused before planning; nothing that reads files
//!   or URLs is registered (no external tables, no URL tables, no file
//!   functions).
//! - **Bounded**: a statement's size and shape are checked before it is
//!   planned ([`crate::guard`]); it is planned and run on threads of its own
//!   ([`crate::threads`]), where a panic fails that statement only; it has a
//!   timeout and a memory limit (sorts, joins and aggregates that would
//!   exceed it fail instead of growing), the values its functions build are
//!   bounded ([`crate::values`]), and each account runs a bounded number of
//!   statements at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext, SessionState};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use reelflow_dataflows::{PeekClient, PeekError, Time, View};

use crate::access::Principal;
use crate::error::{SqlError, sqlstate};
use crate::fast::FastPlan;
use crate::guard::{self, StatementLimits};
use crate::provider::{QueryScope, ViewTable};
use crate::subscribe::{self, RefreshPrincipal, Subscribed};

/// Limits of every statement.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Longest a statement may run, planning included.
    pub timeout: Duration,
    /// Memory the operators of one statement may hold, bytes.
    pub memory_bytes: usize,
    /// Changes a subscription may have waiting for its client before it is
    /// dropped as too slow.
    pub subscribe_buffer: usize,
    /// What a statement may be.
    pub statement: StatementLimits,
    /// Largest value (a string, a list) one function may build, bytes.
    pub max_value_bytes: usize,
    /// Statements one account (not an admin) may run at once.
    pub statements_per_user: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 256 << 20,
            subscribe_buffer: 100_000,
            statement: StatementLimits::default(),
            max_value_bytes: 16 << 20,
            statements_per_user: 4,
        }
    }
}

/// A statement's answer.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The time every table was read at (ms of log time).
    pub as_of: Time,
    /// The columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Rows in all batches.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// SQL over the live views. Cheap to clone.
#[derive(Clone)]
pub struct SqlEngine {
    ctx: SessionContext,
    views: PeekClient,
    limits: SqlLimits,
    /// Statements already planned, and their fast plans ([`crate::fast`]).
    fast: Arc<Mutex<HashMap<String, Option<Arc<FastPlan>>>>>,
    /// Statements answered by the fast path.
    fast_answers: Arc<AtomicU64>,
    /// Statements running per account.
    running: Arc<Mutex<HashMap<uuid::Uuid, usize>>>,
}

/// One running statement of an account; dropping it ends the count.
struct Running {
    counts: Arc<Mutex<HashMap<uuid::Uuid, usize>>>,
    user: uuid::Uuid,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("running statements");
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// Statements whose fast plans are remembered; past it, the memory starts
/// over (a bound against clients that never reuse a statement).
const FAST_PLANS: usize = 1024;

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine").field("limits", &self.limits).finish()
    }
}

/// A statement split from its `AS OF` suffix.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The SQL, without the suffix.
    pub sql: &'a str,
    /// The time it asks for, if any.
    pub as_of: Option<Time>,
}

/// Splits a trailing `AS OF <milliseconds>` (as Materialize writes it) off
/// `sql`.
pub fn split_as_of(sql: &str) -> Result<Statement<'_>, SqlError> {
    let trimmed = sql.trim_end().trim_end_matches(';').trim_end();
    let upper = trimmed.to_ascii_uppercase();
    let Some(at) = upper.rfind("AS OF") else {
        return Ok(Statement { sql, as_of: None });
    };
    let rest = trimmed[at + 5..].trim();
    let before = &trimmed[..at];
    // Only a suffix: `AS OF` must follow whitespace and be followed by a
    // number and nothing else.
    if !before.ends_with(char::is_whitespace) || rest.is_empty() || rest.contains(char::is_whitespace) {
        return Ok(Statement { sql, as_of: None });
    }
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Statement { sql, as_of: None });
    }
    match rest.parse::<Time>() {
        Ok(t) => Ok(Statement {
            sql: before.trim_end(),
            as_of: Some(t),
        }),
        Err(_) => Err(SqlError::syntax(
            format!("AS OF {rest} is not a time in milliseconds since 1970"),
            Some(at + 7),
        )
        .with_hint("for example: SELECT * FROM video_stats AS OF 1795665122030")),
    }
}

impl SqlEngine {
    /// An engine over `views`.
    pub fn new(views: PeekClient, limits: SqlLimits) -> Result<Self, SqlError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("reelflow", "public")
            .with_target_partitions(2)
            .with_batch_size(8192);
        // No spilling: a statement past its memory limit fails rather than
        // filling the disk.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()
            .map_err(SqlError::from)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        crate::values::bound_functions(&ctx, limits.max_value_bytes, limits.memory_bytes)?;
        for view in View::ALL {
            ctx.register_table(view.def().name, Arc::new(ViewTable::new(view, views.clone())))
                .map_err(SqlError::from)?;
        }
        Ok(Self {
            ctx,
            views,
            limits,
            fast: Arc::default(),
            fast_answers: Arc::default(),
            running: Arc::default(),
        })
    }

    /// Counts a statement of `principal`'s, refusing one past
    /// [`SqlLimits::statements_per_user`].
    fn admit(&self, principal: &Principal) -> Result<Option<Running>, SqlError> {
        let user = match principal {
            // Admins run the platform; their statements are not capped.
            Principal::Admin => return Ok(None),
            Principal::Creator { user_id, .. } | Principal::Viewer { user_id } => *user_id,
        };
        let mut counts = self.running.lock().expect("running statements");
        let n = counts.entry(user).or_insert(0);
        if *n >= self.limits.statements_per_user {
            return Err(SqlError::new(
                sqlstate::TOO_MANY,
                format!(
                    "you already have {} statements running; at most {} run at once per account",
                    *n, self.limits.statements_per_user
                ),
            )
            .with_hint("wait for one to finish, then try again"));
        }
        *n += 1;
        Ok(Some(Running {
            counts: Arc::clone(&self.running),
            user,
        }))
    }

    /// Checks the size and shape of `sql` before anything plans it: the
    /// statement without its `AS OF` suffix, or a subscription's `SELECT`,
    /// which is what the planner sees.
    fn check(&self, sql: &str) -> Result<(), SqlError> {
        let limits = &self.limits.statement;
        // The length first, before anything else reads the text.
        guard::check_length(sql, limits)?;
        let statement = split_as_of(sql)?;
        match subscribe::target(statement.sql) {
            Some(target) => match subscribe::inner_query(target) {
                Ok(inner) => guard::check(&inner, limits),
                // Refused later with its own error.
                Err(_) => Ok(()),
            },
            None => guard::check(statement.sql, limits),
        }
    }

    /// Statements answered by the fast path so far.
    pub fn fast_path_answers(&self) -> u64 {
        self.fast_answers.load(Ordering::Relaxed)
    }

    /// The latest time every view is complete at.
    pub fn readable_at(&self) -> Option<Time> {
        self.views.readable_at()
    }

    /// Runs one read-only statement as `principal`.
    pub async fn query(&self, sql: &str, principal: Principal) -> Result<QueryOutput, SqlError> {
        self.query_with_params(sql, Vec::new(), principal).await
    }

    /// Runs one read-only statement with values for its `$1`, `$2`…
    pub async fn query_with_params(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        principal: Principal,
    ) -> Result<QueryOutput, SqlError> {
        self.check(sql)?;
        let statement = split_as_of(sql)?;
        if subscribe::target(statement.sql).is_some() {
            return Err(SqlError::new(
                sqlstate::NOT_SUPPORTED,
                "SUBSCRIBE streams its changes, so it has no single answer to return here",
            )
            .with_hint("over HTTP, send it with Accept: text/event-stream; over pgwire, run it as a query or as COPY (SUBSCRIBE …) TO STDOUT"));
        }
        let as_of = match statement.as_of {
            Some(t) => t,
            None => self
                .views
                .readable_at()
                .ok_or_else(|| SqlError::from(PeekError::NotReady))?,
        };
        let _running = self.admit(&principal)?;
        let engine = self.clone();
        let sql = statement.sql.to_string();
        let run = crate::threads::run(async move { engine.run(&sql, params, as_of, principal).await });
        match tokio::time::timeout(self.limits.timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(SqlError::timeout(self.limits.timeout)),
        }
    }

    async fn run(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        as_of: Time,
        principal: Principal,
    ) -> Result<QueryOutput, SqlError> {
        let known = self.fast.lock().expect("fast plans").get(sql).cloned();
        if let Some(Some(fast)) = &known
            && let Some(answer) = fast.run(&self.views, &params, as_of, &principal).await
        {
            let batch = answer.map_err(SqlError::from)?;
            self.fast_answers.fetch_add(1, Ordering::Relaxed);
            return Ok(QueryOutput {
                as_of,
                schema: batch.schema(),
                batches: vec![batch],
            });
        }
        let mut state = self.ctx.state();
        state
            .config_mut()
            .set_extension(Arc::new(QueryScope { as_of, principal }));
        let plan = state
            .create_logical_plan(sql)
            .await
            .map_err(|e| SqlError::from(e).locate(sql))?;
        if known.is_none() {
            let mut plans = self.fast.lock().expect("fast plans");
            if plans.len() >= FAST_PLANS {
                plans.clear();
            }
            plans.insert(sql.to_string(), crate::fast::plan(&plan).map(Arc::new));
        }
        read_only()
            .verify_plan(&plan)
            .map_err(|e| SqlError::read_only(e.to_string()))?;
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(params).map_err(SqlError::from)?
        };
        let physical = state.create_physical_plan(&plan).await.map_err(SqlError::from)?;
        let schema = physical.schema();
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx())
            .await
            .map_err(SqlError::from)?;
        Ok(QueryOutput { as_of, schema, batches })
    }

    /// Starts a `SUBSCRIBE` statement as `principal`; `refresh` re-reads
    /// the caller's rights as the subscription runs (see
    /// [`crate::subscribe`]).
    pub async fn subscribe(
        &self,
        sql: &str,
        principal: Principal,
        refresh: Option<RefreshPrincipal>,
    ) -> Result<Subscribed, SqlError> {
        self.check(sql)?;
        let statement = split_as_of(sql)?;
        let target =
            subscribe::target(statement.sql).ok_or_else(|| SqlError::syntax("not a SUBSCRIBE statement", Some(1)))?;
        let engine = self.clone();
        let (target, who) = (target.to_string(), principal.clone());
        let plan = crate::threads::run(async move {
            let (state, plan) = engine.plan_subscription(&target, who).await?;
            subscribe::plan(&state, &plan)
        })
        .await?;
        let (view, selector) = plan.source();
        let inner = self
            .views
            .subscribe(view, selector, statement.as_of, self.limits.subscribe_buffer)
            .map_err(SqlError::from)?;
        Ok(Subscribed::new(plan, inner, self.views.clone(), principal, refresh))
    }

    /// The logical plan of a subscription's `SELECT`.
    async fn plan_subscription(
        &self,
        target: &str,
        principal: Principal,
    ) -> Result<(SessionState, LogicalPlan), SqlError> {
        let inner = subscribe::inner_query(target)?;
        self.read_only_plan(&inner, None, principal).await
    }

    /// Plans `sql` (without running it) as `principal`: a read-only logical
    /// plan.
    async fn plan_only(&self, sql: &str, principal: Principal) -> Result<LogicalPlan, SqlError> {
        let statement = split_as_of(sql)?;
        let (_, plan) = self.read_only_plan(statement.sql, statement.as_of, principal).await?;
        Ok(plan)
    }

    /// The read-only logical plan of `sql` (no `AS OF` suffix), and the
    /// session state it was planned in, scoped to `as_of` (or the latest
    /// readable time) and `principal`.
    async fn read_only_plan(
        &self,
        sql: &str,
        as_of: Option<Time>,
        principal: Principal,
    ) -> Result<(SessionState, LogicalPlan), SqlError> {
        let as_of = as_of.or_else(|| self.views.readable_at()).unwrap_or(0);
        let mut state = self.ctx.state();
        state
            .config_mut()
            .set_extension(Arc::new(QueryScope { as_of, principal }));
        let plan = state
            .create_logical_plan(sql)
            .await
            .map_err(|e| SqlError::from(e).locate(sql))?;
        read_only()
            .verify_plan(&plan)
            .map_err(|e| SqlError::read_only(e.to_string()))?;
        Ok((state, plan))
    }

    /// The schema of `sql`'s answer, without running it (for the extended
    /// protocol's Describe).
    pub async fn describe(&self, sql: &str, principal: Principal) -> Result<SchemaRef, SqlError> {
        self.check(sql)?;
        let _running = self.admit(&principal)?;
        let engine = self.clone();
        let sql = sql.to_string();
        crate::threads::run(async move {
            let statement = split_as_of(&sql)?;
            if let Some(target) = subscribe::target(statement.sql) {
                let (state, plan) = engine.plan_subscription(target, principal).await?;
                return Ok(subscribe::plan(&state, &plan)?.output_schema());
            }
            let plan = engine.plan_only(&sql, principal).await?;
            Ok(Arc::new(plan.schema().as_arrow().clone()))
        })
        .await
    }

    /// The types DataFusion infers for the statement's `$1`, `$2`… (`None`
    /// where it cannot tell).
    pub async fn parameter_types(&self, sql: &str, principal: Principal) -> Result<Vec<Option<DataType>>, SqlError> {
        self.check(sql)?;
        let _running = self.admit(&principal)?;
        let engine = self.clone();
        let sql = sql.to_string();
        let plan = crate::threads::run(async move { engine.plan_only(&sql, principal).await }).await?;
        let types = plan.get_parameter_types().map_err(SqlError::from)?;
        let mut numbered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(name, ty)| Some((name.trim_start_matches('$').parse::<usize>().ok()?, ty)))
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        let n = numbered.last().map_or(0, |(n, _)| *n);
        let mut out = vec![None; n];
        for (i, ty) in numbered {
            if i >= 1 {
                out[i - 1] = ty;
            }
        }
        Ok(out)
    }
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        crate::error::from_datafusion(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_a_suffix_in_milliseconds() {
        assert_eq!(
            split_as_of("SELECT * FROM video_stats AS OF 1700000000000;").expect("ok"),
            Statement {
                sql: "SELECT * FROM video_stats",
                as_of: Some(1_700_000_000_000)
            }
        );
        assert_eq!(split_as_of("select 1 as of").expect("ok").as_of, None);
        assert_eq!(split_as_of("SELECT 'as of 5'").expect("ok").as_of, None);
        assert_eq!(split_as_of("SELECT x AS of_col FROM t").expect("ok").as_of, None);
        assert_eq!(split_as_of("SELECT 1 AS OF yesterday").expect("ok").as_of, None);
        let bad = split_as_of("SELECT 1 AS OF 99999999999999999999999").expect_err("too large");
        assert!(bad.hint.is_some());
    }
}
