//! SQL over Reelflow's live views: a DataFusion catalog whose tables are the
//! views, consistent as-of reads, the HTTP query API, the PostgreSQL wire
//! protocol and subscriptions.
//!
//! Nothing is here yet: SQL lands with its own capability, and until then no
//! command offers it.
