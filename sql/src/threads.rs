//! The threads statements are planned and run on.
//!
//! A statement is the one thing a caller sends that the engine walks
//! recursively, so it is planned and executed on threads of its own, apart
//! from the runtime that serves HTTP, pgwire, uploads and the dataflows:
//!
//! - their stack is known and large ([`STACK_BYTES`]), so the bounds of
//!   [`crate::guard`] have a wide margin below an overflow;
//! - a panic while planning or running a statement ends that statement with
//!   an internal error, not the process (the task is caught by its join
//!   handle; processes that exit on a panicking thread spare threads named
//!   [`THREAD_NAME`]);
//! - a statement dropped by its caller (a timeout, a cancel request, a
//!   closed connection) is aborted, not left running.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

use crate::error::{SqlError, sqlstate};

/// Name of every SQL thread.
pub const THREAD_NAME: &str = "reelflow-sql";

/// Stack of every SQL thread, bytes (tokio's default is 2 MiB).
pub const STACK_BYTES: usize = 16 << 20;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(THREAD_NAME)
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()
            .expect("starting the SQL threads")
    })
}

/// Whether the current thread is one of the SQL threads.
pub fn is_sql_thread() -> bool {
    std::thread::current().name() == Some(THREAD_NAME)
}

/// Aborts the task when its caller stops waiting for it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` on the SQL threads and waits for it; a panic in it becomes
/// an internal error of this statement.
pub async fn run<T: Send + 'static>(
    work: impl Future<Output = Result<T, SqlError>> + Send + 'static,
) -> Result<T, SqlError> {
    let mut task = AbortOnDrop(runtime().spawn(work));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(panic = %what, "a SQL statement panicked; it failed alone");
            Err(SqlError::new(
                sqlstate::INTERNAL,
                format!("the statement failed inside the engine: {what}"),
            )
            .with_hint("this is a bug in Reelflow; the server goes on, and other statements are not affected"))
        }
        Err(_) => Err(SqlError::new(sqlstate::CANCELED, "the statement was canceled")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_statement_fails_alone() {
        let empty: Vec<u8> = Vec::new();
        let e = run(async move { Ok(empty[usize::from(std::hint::black_box(3u8))]) })
            .await
            .expect_err("panicked");
        assert_eq!(e.code, sqlstate::INTERNAL);
        assert!(e.message.contains("out of bounds"), "{}", e.message);
        assert_eq!(run(async { Ok(is_sql_thread()) }).await, Ok(true));
    }
}
