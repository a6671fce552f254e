//! What every Reelflow binary (`reelflow`, `reelflow-bench`) does around
//! its work: mimalloc's options first, logs on standard error filtered by
//! `REELFLOW_LOG`, the async runtime, and on failure the whole chain of
//! what it was doing and why it failed.

use std::future::Future;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Sets the allocator's options and starts logging. Call it first thing in
/// `main`.
pub fn start() {
    crate::allocator::configure();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("REELFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
}

/// Runs `work` on a new multi-threaded runtime; its error, with every
/// cause, goes to standard error and makes the exit code a failure.
pub fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what we were doing, and why it failed.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
