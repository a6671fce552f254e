//! Reelflow's serving layer and the `reelflow` command.
//!
//! - [`config`]: the typed configuration (file, environment, flags).
//! - [`platform`]: opens the event log and object storage it names.
//! - [`app`]: the axum application.
//! - [`problem`]: errors as `application/problem+json`.
//! - [`bench`]: `reelflow bench …`.

pub mod app;
pub mod bench;
pub mod config;
pub mod platform;
pub mod problem;

pub use app::{AppState, app};
pub use config::Config;
