//! SQL over Reelflow's live views: a DataFusion session whose tables are
//! the views ([`provider`]), read consistently at one timestamp per
//! statement ([`engine`]), over HTTP ([`http`]) and the PostgreSQL wire
//! protocol ([`pg`]), with the caller's rights applied inside the tables
//! ([`access`]); `SUBSCRIBE` follows a view's changes as they happen
//! ([`subscribe`]).

pub mod access;
pub mod engine;
pub mod error;
pub mod fast;
pub mod guard;
pub mod http;
pub mod pg;
pub mod pg_catalog;
pub mod provider;
pub mod split;
pub mod subscribe;
pub mod tables;
pub mod threads;
pub mod values;

pub use access::Principal;
pub use engine::{QueryOutput, SqlEngine, SqlLimits};
pub use error::SqlError;
pub use guard::StatementLimits;
pub use pg::{Authenticator, PgServer, PgTls};
pub use subscribe::{Chunk, RefreshPrincipal, Subscribed};
