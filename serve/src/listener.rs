//! How Reelflow's HTTP listeners take connections: with the limits a
//! server facing the internet needs, which `axum::serve` does not set.
//!
//! - **Header read timeout** (`http.header_read_timeout_s`): a request's
//!   head must arrive whole within it, so a client that trickles a header
//!   line a second, or stalls mid-header, is dropped instead of holding a
//!   connection forever (Slowloris). It also closes keep-alive connections
//!   that stay idle as long.
//! - **Body idle timeout** (`http.body_idle_timeout_s`): a request body that
//!   sends nothing for that long fails (408-like: the handler sees a read
//!   error). It bounds the time between chunks, not the whole upload, so a
//!   large upload over a slow link still completes.
//! - **Connections per client IP** (`http.max_connections_per_ip`): past
//!   it, new connections from that address are closed at once. Behind a
//!   proxy every connection comes from the proxy: raise it there, or set 0
//!   for no limit.
//!
//! Streams the server writes (`SUBSCRIBE` over server-sent events, media)
//! are not cut by any of these: they bound what the server waits to read.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// Longest a request's head may take to arrive.
    pub header_read_timeout: Duration,
    /// Longest a request body may send nothing.
    pub body_idle_timeout: Duration,
    /// Open connections one client address may hold; 0 for no limit.
    pub max_connections_per_ip: usize,
}

impl Default for ListenLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections_per_ip: 256,
        }
    }
}

/// How long a shutdown waits for open connections (subscriptions never end
/// by themselves).
const DRAIN: Duration = Duration::from_secs(10);

/// Open connections per client address.
#[derive(Debug, Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection, counted until dropped.
struct Slot {
    per_ip: PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut counts = self.0.lock().expect("connections per ip");
        let n = counts.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.0.lock().expect("connections per ip");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then waits a moment for open connections. Handlers can extract
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let per_ip = PerIp::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(%peer, "too many connections from this address; closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer's address for the handlers, and bodies under the idle
        // timeout.
        let body_idle = limits.body_idle_timeout;
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(|body| Body::new(TimeoutBody::new(body_idle, body)))
            },
        ));
        // HTTP/1.1 only: the API is plain HTTP (HTTP/2 comes with TLS, at the
        // proxy), and sniffing for an HTTP/2 preface would wait, with no
        // timeout, on a client that sends a few bytes and stalls.
        let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::info!("connections still open after {} s; closing them", DRAIN.as_secs());
    }
    Ok(())
}
