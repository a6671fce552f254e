//! `reelflow bench …`: benchmarks run beside the peer each capability is
//! measured against, printing readable results or, with `--json`, one JSON
//! object with every figure (the peer's included).

pub mod api;
pub mod log;
pub mod transcode;
pub mod upload;
