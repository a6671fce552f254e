//! Reelflow's serving layer and the `reelflow` command.
//!
//! - [`config`]: the typed configuration (file, environment, flags).
//! - [`platform`]: opens the event log and object storage it names.
//! - [`db`]: the metadata database (SQLite or PostgreSQL) and migrations.
//! - [`auth`], [`accounts`]: tokens and the one check every listener
//!   applies to them; accounts and profiles.
//! - [`catalog`]: the video catalog; [`outbox`]: its events.
//! - [`uploads`]: tus resumable uploads and plain source uploads.
//! - [`playback`]: HLS delivery, playback tokens, the player and beacons.
//! - [`views`], [`sql`]: the live views over HTTP and SQL; [`dataflow`]:
//!   the dataflow service's own listener; [`upstream`]: how the API
//!   reaches that service.
//! - [`console`]: the web console at `/`; [`ops`]: health and metrics;
//!   [`exposition`]: `/metrics` in the OpenMetrics format.
//! - [`app`]: the axum application, merged from each area's `routes()`;
//!   [`state`]: what its handlers share; [`background`]: what runs beside
//!   it; [`problem`]: errors as problem+json; [`ratelimit`], [`validate`]:
//!   abuse control and field checks.
//! - [`client`]: `reelflow sql` and `reelflow upload`, over the public API.
//! - [`allocator`], [`process`]: mimalloc's options, logging, the runtime
//!   and the exit status, for every binary.
//!
//! The benchmarks are a crate of their own, `reelflow-bench` (`serve/bench`).

pub mod accounts;
pub mod allocator;
pub mod app;
pub mod auth;
pub mod background;
pub mod catalog;
pub mod client;
pub mod config;
pub mod console;
pub mod dataflow;
pub mod db;
pub mod exposition;
pub mod listener;
pub mod ops;
pub mod outbox;
pub mod platform;
pub mod playback;
pub mod problem;
pub mod process;
pub mod ratelimit;
pub mod sql;
pub mod state;
pub mod transcoders;
pub mod uploads;
pub mod upstream;
pub mod validate;
pub mod views;

pub use app::app;
pub use config::Config;
pub use state::AppState;
