//! What runs beside the API's HTTP server, for as long as it serves: the
//! outbox publisher (catalog changes become events only once committed),
//! the follower that keeps catalog statuses in step with the pipeline, and
//! the sweeper of expired uploads.

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;
use crate::{catalog, uploads};

/// Starts what runs beside the HTTP server: the outbox publisher, the
/// follower that keeps catalog statuses in step with the pipeline, and the
/// sweeper of expired uploads (once a minute).
pub fn spawn_background(state: &AppState) -> tokio::task::JoinHandle<()> {
    let publisher = crate::outbox::spawn_publisher(
        state.db.clone(),
        state.platform.log.clone(),
        Arc::clone(&state.outbox_wake),
    );
    let sweeper_state = state.clone();
    let status = catalog::status::follow(state.db.clone(), state.platform.log.clone());
    // Aborting the returned task stops the publisher too.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let guard = AbortOnDrop(publisher.abort_handle());
    tokio::spawn(async move {
        let _guard = guard;
        let sweeper = async {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                match uploads::sweep_expired(&sweeper_state).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(n, "dropped expired uploads"),
                    Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
                }
            }
        };
        tokio::select! {
            _ = publisher => {},
            () = sweeper => {},
            () = status => {},
        }
    })
}
