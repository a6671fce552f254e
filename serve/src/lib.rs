//! Reelflow's serving layer and the `reelflow` command.
//!
//! - [`config`]: the typed configuration (file, environment, flags).
//! - [`platform`]: opens the event log and object storage it names.
//! - [`db`]: the metadata database (SQLite or PostgreSQL) and migrations.
//! - [`auth`], [`users`]: accounts, tokens, profiles.
//! - [`catalog`]: the video catalog; [`outbox`]: its events.
//! - [`uploads`]: tus resumable uploads and plain source uploads.
//! - [`console`]: the web console at `/`.
//! - [`app`]: the axum application; [`problem`]: errors as problem+json;
//!   [`ratelimit`], [`validate`]: abuse control and field checks.
//! - [`client`]: `reelflow sql` and `reelflow upload`, over the public API.
//! - [`allocator`]: mimalloc's options, for every binary.
//!
//! The benchmarks are a crate of their own, `reelflow-bench` (`serve/bench`).

pub mod allocator;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod client;
pub mod config;
pub mod console;
pub mod dataflow;
pub mod db;
pub mod listener;
pub mod outbox;
pub mod platform;
pub mod playback;
pub mod problem;
pub mod ratelimit;
pub mod sql;
pub mod transcoders;
pub mod uploads;
pub mod users;
pub mod validate;
pub mod views;

pub use app::{AppState, app};
pub use config::Config;
