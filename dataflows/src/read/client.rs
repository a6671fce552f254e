//! The reader's side: [`PeekClient`] turns a read of a view at a time
//! into requests for the local workers and waits for their answer.
//!
//! A read first picks its time: the latest time every local worker is
//! complete at, or the `AS OF` asked for if the retained history still
//! holds it. Views arranged in another form than their rows (retention,
//! [`super::retention`]) are read as the arranged rows they come from and
//! derived here, on the caller's thread, so no worker spends time on it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::request::{PeekError, Selector};
use super::retention;
use super::subscribe::{Subscriber, Subscription};
use crate::datum::Row;
use crate::history::Retained;
use crate::metrics::Metrics;
use crate::schema::View;
use crate::time::{Time, now_ms};

/// What a reader hands a local worker.
pub(crate) enum Command {
    /// Read `selector` of `view` at `as_of`, answering on `reply`.
    Peek {
        view: View,
        selector: Selector,
        as_of: Time,
        reply: oneshot::Sender<Result<Vec<(Row, Row)>, PeekError>>,
    },
    /// Start `subscriber` on `selector` of `view`.
    Subscribe {
        view: View,
        selector: Selector,
        subscriber: Subscriber,
    },
}

/// The rows of a view at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Peeked {
    /// The time read at: every event of the log up to it, none after.
    pub as_of: Time,
    /// `(key, value)` rows, sorted.
    pub rows: Vec<(Row, Row)>,
}

/// Reads views from any thread of this process. Cheap to clone.
#[derive(Clone)]
pub struct PeekClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for PeekClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeekClient")
            .field("local_workers", &self.inner.commands.len())
            .field("peers", &self.inner.peers)
            .finish()
    }
}

struct ClientInner {
    commands: Vec<Mutex<mpsc::Sender<Command>>>,
    threads: Mutex<Vec<Option<Thread>>>,
    next_worker: AtomicUsize,
    metrics: Arc<Metrics>,
    timeout: Duration,
    peers: usize,
    /// What the cluster keeps readable, once its workers have agreed.
    retained: Arc<OnceLock<Retained>>,
}

impl PeekClient {
    /// A client handing commands to the local workers through `commands`.
    pub(crate) fn new(
        commands: Vec<mpsc::Sender<Command>>,
        metrics: Arc<Metrics>,
        timeout: Duration,
        peers: usize,
        retained: Arc<OnceLock<Retained>>,
    ) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                commands: commands.into_iter().map(Mutex::new).collect(),
                threads: Mutex::new(Vec::new()),
                next_worker: AtomicUsize::new(0),
                metrics,
                timeout,
                peers,
                retained,
            }),
        }
    }

    /// The local workers' threads, to wake them when a command comes.
    pub(crate) fn set_threads(&self, threads: Vec<Option<Thread>>) {
        *self.inner.threads.lock().expect("threads lock") = threads;
    }

    /// Wakes every local worker.
    pub(crate) fn unpark_workers(&self) {
        for t in self.inner.threads.lock().expect("threads lock").iter().flatten() {
            t.unpark();
        }
    }

    /// The latest time at which every view is complete on every local
    /// worker, if any is yet at or past the horizon.
    pub fn readable_at(&self) -> Option<Time> {
        let horizon = self.retained()?.horizon;
        let frontier = self.inner.metrics.frontier.lock().expect("metrics lock");
        if frontier.len() < self.inner.commands.len() {
            return None;
        }
        frontier.values().min().filter(|f| **f > horizon).map(|f| f - 1)
    }

    /// Which past times stay readable, as every process of the cluster
    /// agreed; `None` until they have.
    pub fn retained(&self) -> Option<Retained> {
        self.inner.retained.get().copied()
    }

    /// Workers in the whole cluster.
    pub fn peers(&self) -> usize {
        self.inner.peers
    }

    /// This process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The time a read asking for `as_of` reads at, if it may.
    fn read_time(&self, as_of: Option<Time>) -> Result<Time, PeekError> {
        let readable = self.readable_at();
        let as_of = match as_of {
            Some(t) if t > now_ms() + 1000 => return Err(PeekError::Future { as_of: t }),
            Some(t) => t,
            None => readable.ok_or(PeekError::NotReady)?,
        };
        // The retained history is the same for every reader, whether or not
        // the arrangements have compacted that far yet.
        if let Some(since) = readable.zip(self.retained()).map(|(r, retained)| retained.since(r))
            && as_of < since
        {
            return Err(PeekError::Compacted { as_of, since });
        }
        Ok(as_of)
    }

    /// Hands `command` to the next local worker.
    fn command(&self, command: Command) -> Result<(), PeekError> {
        let n = self.inner.commands.len();
        let w = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % n;
        self.inner.commands[w]
            .lock()
            .expect("command lock")
            .send(command)
            .map_err(|_| PeekError::ShutDown)?;
        if let Some(t) = &self.inner.threads.lock().expect("threads lock")[w] {
            t.unpark();
        }
        Ok(())
    }

    /// Subscribes to `selector` of `view`: its rows at `as_of` (or the
    /// latest readable time), then every change after it, with progress
    /// markers (see [`super::subscribe`]). At most `limit` updates may wait
    /// for the consumer before it is dropped as too slow.
    pub fn subscribe(
        &self,
        view: View,
        selector: Selector,
        as_of: Option<Time>,
        limit: usize,
    ) -> Result<Subscription, PeekError> {
        let as_of = self.read_time(as_of)?;
        let (subscriber, mut subscription) = Subscriber::new(view, as_of, limit);
        subscription.derive(retention::Deriving::new(view, &selector));
        self.command(Command::Subscribe {
            view,
            selector: retention::stored_selector(view, &selector),
            subscriber,
        })?;
        Ok(subscription)
    }

    /// Reads `selector` of `view` at `as_of`, or at the latest readable time.
    pub async fn peek(&self, view: View, selector: Selector, as_of: Option<Time>) -> Result<Peeked, PeekError> {
        let as_of = self.read_time(as_of)?;
        // A stored view is read as the stored rows its rows come from.
        let mut answers = Vec::new();
        for stored in retention::stored_selectors(view, &selector) {
            let (reply, answer) = oneshot::channel();
            self.command(Command::Peek {
                view,
                selector: stored,
                as_of,
                reply,
            })?;
            answers.push(answer);
        }
        let timeout = self.inner.timeout;
        let mut stored = Vec::new();
        for answer in answers {
            stored.extend(
                tokio::time::timeout(timeout, answer)
                    .await
                    .map_err(|_| PeekError::Timeout(timeout.as_millis() as u64))?
                    .map_err(|_| PeekError::ShutDown)??,
            );
        }
        let mut rows = retention::derive(view, stored, &selector);
        rows.sort();
        Ok(Peeked { as_of, rows })
    }

    /// Waits until the views are readable at `t` or later.
    pub async fn wait_until_readable(&self, t: Time, timeout: Duration) -> Result<Time, PeekError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.readable_at().filter(|r| *r >= t) {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(PeekError::Timeout(timeout.as_millis() as u64));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
