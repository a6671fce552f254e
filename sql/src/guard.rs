//! What a statement may be, checked before anything plans it.
//!
//! Planning and optimizing walk a statement's expression tree recursively,
//! so a left-deep chain (`1+1+…+1`, a long `AND`, `||` or `UNION ALL`
//! chain) deep enough overflows a thread's stack, which no error handling
//! can catch: the whole process dies. The parser's recursion limit refuses
//! deep nesting of parentheses but not those chains, which it builds in a
//! loop. So every statement passes three bounds here first, each cheap and
//! none recursive on unbounded input:
//!
//! 1. its length in bytes ([`StatementLimits::max_bytes`]);
//! 2. the number of operators among its tokens
//!    ([`StatementLimits::max_operators`]), counted before a tree is built
//!    (dropping a tree is recursive too);
//! 3. the depth of its deepest expression and its number of expressions
//!    ([`StatementLimits::max_depth`], [`StatementLimits::max_expressions`]),
//!    measured on the parsed statement.
//!
//! Statements are then planned and run on threads with a known, large stack
//! ([`crate::engine`]), so the bounds have a wide margin, and DataFusion's
//! own recursion protection grows the stack where its walks recurse.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{SqlError, sqlstate};

/// The bounds on one statement (`[sql]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementLimits {
    /// Longest statement accepted, bytes.
    pub max_bytes: usize,
    /// Most operators (`+`, `AND`, `||`, `UNION` …) in one statement.
    pub max_operators: usize,
    /// Deepest expression (a chain of n operators is n deep).
    pub max_depth: usize,
    /// Most expressions in one statement.
    pub max_expressions: usize,
}

impl Default for StatementLimits {
    fn default() -> Self {
        // Far beyond what a person or a dashboard writes; far below what
        // overflows a planning thread's stack (about 700 levels on a 2 MiB
        // stack, measured; statements plan on 16 MiB stacks).
        Self {
            max_bytes: 256 << 10,
            max_operators: 2_000,
            max_depth: 200,
            max_expressions: 50_000,
        }
    }
}

/// Nesting of parentheses and subqueries the parser follows.
const PARSER_RECURSION: usize = 64;

/// Checks `sql` (one statement, without an `AS OF` suffix) against
/// `limits`. A statement that does not parse passes: the planner reports
/// its syntax error with a position.
pub fn check(sql: &str, limits: &StatementLimits) -> Result<(), SqlError> {
    check_length(sql, limits)?;
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Ok(());
    };
    let operators = tokens.iter().filter(|t| is_operator(t)).count();
    // A chain of set operations is as deep as it is long.
    let set_operations = tokens
        .iter()
        .filter(|t| matches!(t, Token::Word(w) if matches!(w.keyword, Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT)))
        .count();
    if set_operations > limits.max_depth {
        return Err(too_complex(format!(
            "the statement has {set_operations} UNION, INTERSECT or EXCEPT operations; at most {} are accepted",
            limits.max_depth
        ))
        .with_hint("sql.max_expression_depth sets the limit"));
    }
    if operators > limits.max_operators {
        return Err(too_complex(format!(
            "the statement has {operators} operators; at most {} are accepted",
            limits.max_operators
        ))
        .with_hint("sql.max_statement_operators sets the limit; a long list of alternatives reads better as IN (…)"));
    }
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    let statements = match parsed {
        Ok(statements) => statements,
        Err(ParserError::RecursionLimitExceeded) => {
            return Err(too_complex(format!(
                "the statement nests parentheses or subqueries more than {PARSER_RECURSION} deep"
            )));
        }
        Err(_) => return Ok(()),
    };
    let mut shape = Shape::default();
    let _ = statements.visit(&mut shape);
    if shape.deepest > limits.max_depth {
        return Err(too_complex(format!(
            "the statement has an expression {} levels deep; at most {} are accepted",
            shape.deepest, limits.max_depth
        ))
        .with_hint("sql.max_expression_depth sets the limit; a long list of alternatives reads better as IN (…)"));
    }
    if shape.expressions > limits.max_expressions {
        return Err(too_complex(format!(
            "the statement has {} expressions; at most {} are accepted",
            shape.expressions, limits.max_expressions
        )));
    }
    Ok(())
}

/// Checks the length of `sql` alone.
pub fn check_length(sql: &str, limits: &StatementLimits) -> Result<(), SqlError> {
    if sql.len() > limits.max_bytes {
        return Err(too_large(format!(
            "the statement is {} bytes long; at most {} are accepted",
            sql.len(),
            limits.max_bytes
        ))
        .with_hint("sql.max_statement_bytes sets the limit"));
    }
    Ok(())
}

fn too_large(message: String) -> SqlError {
    SqlError::new(sqlstate::LIMIT, message)
}

fn too_complex(message: String) -> SqlError {
    SqlError::new(sqlstate::TOO_COMPLEX, message)
}

/// Whether `token` combines expressions or queries: each one can add a level
/// to a left-deep chain.
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::JOIN
                | Keyword::CASE
                | Keyword::WHEN
        ),
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::Comma
        | Token::Whitespace(_)
        | Token::LParen
        | Token::RParen
        | Token::Period
        | Token::SemiColon
        | Token::Placeholder(_)
        | Token::LBracket
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace
        | Token::Colon => false,
        t => !is_literal(t),
    }
}

fn is_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

/// The depth and size of a statement's expressions.
#[derive(Default)]
struct Shape {
    depth: usize,
    deepest: usize,
    expressions: usize,
}

impl Visitor for Shape {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        self.expressions += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(op: &str, n: usize) -> String {
        format!("SELECT {}", vec!["1"; n].join(op))
    }

    #[test]
    fn ordinary_statements_pass() {
        let limits = StatementLimits::default();
        for sql in [
            "SELECT v.video_id, v.views, q.startup_ms_p95 FROM video_stats v JOIN qoe q USING (video_id) ORDER BY views DESC LIMIT 10",
            "SELECT * FROM video_stats WHERE video_id IN ('a', 'b', 'c') AND views > 3 OR watch_time_s < 2",
            "not sql at all ((",
        ] {
            check(sql, &limits).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        check(&chain("+", 150), &limits).expect("150 terms");
    }

    #[test]
    fn long_chains_are_refused_before_planning() {
        let limits = StatementLimits::default();
        let e = check(&chain("+", 1_000), &limits).expect_err("1,000 terms");
        assert_eq!(e.code, sqlstate::TOO_COMPLEX);
        assert!(e.message.contains("1000 levels deep"), "{}", e.message);
        let e = check(&chain(" AND ", 5_000), &limits).expect_err("5,000 terms");
        assert!(e.message.contains("4999 operators"), "{}", e.message);
        let unions = vec!["SELECT 1"; 3_000].join(" UNION ALL ");
        assert_eq!(check(&unions, &limits).expect_err("unions").code, sqlstate::TOO_COMPLEX);
        let nested = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert!(check(&nested, &limits).expect_err("nested").message.contains("nests"));
        let long = format!("SELECT '{}'", "x".repeat(300 << 10));
        assert_eq!(check(&long, &limits).expect_err("long").code, sqlstate::LIMIT);
    }
}
