//! Errors of SQL statements, shaped so both front ends can show them well:
//! a SQLSTATE code (what PostgreSQL clients branch on), the message, the
//! 1-based character position in the statement where that is known, and a
//! hint where one helps.

use reelflow_dataflows::PeekError;

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// SQLSTATE, such as `42601` for a syntax error.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// 1-based character position in the statement.
    pub position: Option<usize>,
    /// What to do about it.
    pub hint: Option<String>,
}

/// SQLSTATE codes used here.
pub mod sqlstate {
    /// syntax_error.
    pub const SYNTAX: &str = "42601";
    /// undefined_table.
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// undefined_column.
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// undefined_function.
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// read_only_sql_transaction.
    pub const READ_ONLY: &str = "25006";
    /// query_canceled (timeouts and cancel requests).
    pub const CANCELED: &str = "57014";
    /// out_of_memory.
    pub const OUT_OF_MEMORY: &str = "53200";
    /// feature_not_supported.
    pub const NOT_SUPPORTED: &str = "0A000";
    /// object_not_in_prerequisite_state (views still starting, history gone).
    pub const NOT_READY: &str = "55000";
    /// data_exception.
    pub const DATA: &str = "22000";
    /// invalid_text_representation (a cast of text that is not a value of
    /// the type).
    pub const INVALID_TEXT: &str = "22P02";
    /// division_by_zero.
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// numeric_value_out_of_range.
    pub const OUT_OF_RANGE: &str = "22003";
    /// insufficient_privilege.
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// invalid_password.
    pub const INVALID_PASSWORD: &str = "28P01";
    /// program_limit_exceeded (result or statement too large).
    pub const LIMIT: &str = "54000";
    /// statement_too_complex (an expression too deep, too many operators).
    pub const TOO_COMPLEX: &str = "54001";
    /// too_many_connections (a caller's concurrent statements).
    pub const TOO_MANY: &str = "53300";
    /// internal_error.
    pub const INTERNAL: &str = "XX000";
}

impl SqlError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            position: None,
            hint: None,
        }
    }

    /// A syntax error at `position`.
    pub fn syntax(message: impl Into<String>, position: Option<usize>) -> Self {
        Self {
            position,
            ..Self::new(sqlstate::SYNTAX, message)
        }
    }

    /// A statement that would write, or is not a query.
    pub fn read_only(message: impl Into<String>) -> Self {
        Self::new(sqlstate::READ_ONLY, message)
            .with_hint("Reelflow's SQL is read-only: the views change only through events; use SELECT")
    }

    /// A statement that ran out of time.
    pub fn timeout(after: std::time::Duration) -> Self {
        Self::new(
            sqlstate::CANCELED,
            format!("canceling statement due to statement timeout ({} s)", after.as_secs()),
        )
        .with_hint("narrow the query: filter on a view's key, or add a LIMIT")
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Finds the position of a parser error in `sql` (the parser says
    /// "at Line: L, Column: C").
    pub fn locate(mut self, sql: &str) -> Self {
        if self.position.is_some() {
            return self;
        }
        let Some(at) = self.message.rfind("Line: ") else {
            return self;
        };
        let tail = &self.message[at + 6..];
        let mut numbers = tail
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok());
        if let (Some(line), Some(column)) = (numbers.next(), numbers.next()) {
            let before: usize = sql
                .split('\n')
                .take(line.saturating_sub(1))
                .map(|l| l.chars().count() + 1)
                .sum();
            self.position = Some(before + column);
        }
        self
    }
}

impl From<PeekError> for SqlError {
    fn from(e: PeekError) -> Self {
        match &e {
            PeekError::Compacted { since, .. } => Self::new(sqlstate::NOT_READY, e.to_string()).with_hint(format!(
                "read AS OF {since} or later (dataflow.history_s sets how far back)"
            )),
            PeekError::Future { .. } => Self::new(sqlstate::DATA, e.to_string()),
            PeekError::NotReady => Self::new(sqlstate::NOT_READY, e.to_string()).with_hint("try again in a moment"),
            PeekError::Timeout(_) | PeekError::ShutDown => Self::new(sqlstate::CANCELED, e.to_string()),
            PeekError::Internal { .. } => Self::new(sqlstate::INTERNAL, e.to_string()),
            PeekError::TooSlow { .. } => Self::new(sqlstate::LIMIT, e.to_string()).with_hint(
                "read the changes as they come, subscribe to fewer rows (a WHERE on the view's key), or raise sql.subscribe_buffer",
            ),
        }
    }
}

/// Maps DataFusion's errors to SQLSTATEs and hints.
pub(crate) fn from_datafusion(e: datafusion::common::DataFusionError) -> SqlError {
    use datafusion::common::DataFusionError as E;
    match e {
        E::Context(_, inner) => from_datafusion(*inner),
        E::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => from_datafusion(e),
            Err(shared) => SqlError::new(sqlstate::INTERNAL, shared.to_string()),
        },
        E::External(inner) => match inner.downcast::<PeekError>() {
            Ok(peek) => SqlError::from(*peek),
            Err(other) => SqlError::new(sqlstate::INTERNAL, other.to_string()),
        },
        E::SQL(parse, _) => SqlError::syntax(parse.to_string(), None),
        E::ResourcesExhausted(m) => {
            SqlError::new(sqlstate::OUT_OF_MEMORY, format!("the query needs too much memory: {m}"))
                .with_hint("narrow the query: filter on a view's key, aggregate less, or add a LIMIT")
        }
        E::NotImplemented(m) => SqlError::new(sqlstate::NOT_SUPPORTED, m),
        E::Plan(m) => plan_error(m),
        E::SchemaError(e, _) => {
            let m = e.to_string();
            if m.contains("No field named") {
                SqlError::new(sqlstate::UNDEFINED_COLUMN, m)
            } else {
                SqlError::new(sqlstate::SYNTAX, m)
            }
        }
        E::Diagnostic(_, inner) => from_datafusion(*inner),
        E::ArrowError(e, _) => from_arrow(*e),
        other => {
            let m = other.to_string();
            if m.contains("Resources exhausted") {
                SqlError::new(sqlstate::OUT_OF_MEMORY, m)
            } else if m.contains("Cast error") || m.contains("Cannot cast") || m.contains("Parser error") {
                SqlError::new(sqlstate::INVALID_TEXT, m)
            } else if m.contains("Divide by zero") || m.contains("division by zero") {
                SqlError::new(sqlstate::DIVISION_BY_ZERO, m)
            } else if m.contains("Error during planning") {
                plan_error(m)
            } else {
                SqlError::new(sqlstate::INTERNAL, m)
            }
        }
    }
}

/// Arrow's errors while computing: those a statement's values cause are the
/// caller's (22xxx), as PostgreSQL reports them.
fn from_arrow(e: datafusion::arrow::error::ArrowError) -> SqlError {
    use datafusion::arrow::error::ArrowError as A;
    match e {
        A::CastError(m) | A::ParseError(m) => SqlError::new(sqlstate::INVALID_TEXT, m),
        A::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        A::ArithmeticOverflow(m) => SqlError::new(sqlstate::OUT_OF_RANGE, m),
        A::InvalidArgumentError(m) => SqlError::new(sqlstate::DATA, m),
        A::ExternalError(inner) => match inner.downcast::<datafusion::common::DataFusionError>() {
            Ok(df) => from_datafusion(*df),
            Err(other) => SqlError::new(sqlstate::INTERNAL, other.to_string()),
        },
        other => SqlError::new(sqlstate::INTERNAL, other.to_string()),
    }
}

fn plan_error(m: String) -> SqlError {
    if m.contains("table") && m.contains("not found") {
        let tables: Vec<&str> = reelflow_dataflows::VIEWS.iter().map(|v| v.name).collect();
        SqlError::new(sqlstate::UNDEFINED_TABLE, m).with_hint(format!("the tables are: {}", tables.join(", ")))
    } else if m.contains("Invalid function") || m.contains("function") && m.contains("not found") {
        SqlError::new(sqlstate::UNDEFINED_FUNCTION, m)
            .with_hint("functions that sleep, or read files or URLs, are not available here")
    } else if m.contains("not supported") || m.contains("Unsupported") {
        SqlError::new(sqlstate::NOT_SUPPORTED, m)
    } else {
        SqlError::new(sqlstate::SYNTAX, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_count_characters_across_lines() {
        let e = SqlError::syntax(
            "sql parser error: Expected: end of statement, found: x at Line: 2, Column: 3",
            None,
        )
        .locate("SELECT 1\nFROMx x");
        assert_eq!(e.position, Some(12));
    }
}
