//! Running the dataflows: the timely workers of this process, and the
//! [`PeekClient`] the rest of the process reads the views through.
//!
//! Each worker builds the same two dataflows — the views over its share of
//! the log, and the peek dataflow — and then loops: step the dataflows,
//! take peek requests handed to it, and every so often maintain the views'
//! arrangements: advance their compaction to keep `history` of past times
//! readable (so reads `AS OF` a recent time work) and no more, and publish
//! the frontier and arrangement sizes to [`Metrics`].
//!
//! Nothing before the start less the history (the *horizon*) is ever
//! readable: the sources stamp older records coarsely to catch up faster
//! ([`crate::source`]), so the views are not readable until complete past
//! the horizon, and no read may ask for a time before it (`since`). The
//! workers of every process agree on one horizon and history before they
//! build the views ([`crate::history`]).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use differential_dataflow::operators::arrange::Arranged as Arrangement;
use differential_dataflow::{ExchangeData, Hashable};
use reelflow_ingest::log::{AnyLog, EventLog, LogError};
use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{ProbeHandle, Stream};

use crate::cluster::ClusterConfig;
use crate::history::{self, Retained};
use crate::metrics::Metrics;
use crate::read::{
    Command, Outstanding, PeekClient, PeekRequest, QOE, RETENTION, ROWS, RequestKind, Selector, Shape, Store,
    Subscribers, TapUpdate, Taps, Traces, VIDEO_STATS, ViewStore, ViewTrace, WATCH_HISTORY, Waiting, deliver,
    peek_dataflow, tap,
};
use crate::schema::View;
use crate::snapshot::{self, Snapshot};
use crate::source::{Resume, SourceOptions, log_source};
use crate::time::{Coll, Time};
use crate::views::{self, Windows};

/// How to run the dataflows.
#[derive(Clone, Debug)]
pub struct DataflowOptions {
    /// Workers and processes.
    pub cluster: ClusterConfig,
    /// Reading the log.
    pub source: SourceOptions,
    /// Windows of the time-based views.
    pub windows: Windows,
    /// How much past time stays readable with `as_of`.
    pub history: Duration,
    /// Partitions per topic when a topic has to be created.
    pub partitions: u32,
    /// How long a peek may wait for the dataflows.
    pub peek_timeout: Duration,
    /// The state to start from, with the log read only after it
    /// ([`crate::snapshot`]); the whole log without one.
    pub snapshot: Option<Arc<Snapshot>>,
}

impl Default for DataflowOptions {
    fn default() -> Self {
        Self {
            cluster: ClusterConfig::single(1),
            source: SourceOptions::default(),
            windows: Windows::default(),
            // The product's default: `reelflow`'s `dataflow.history_s` is read from here.
            history: Duration::from_secs(300),
            partitions: 8,
            peek_timeout: Duration::from_secs(10),
            snapshot: None,
        }
    }
}

/// Why the dataflows could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The log said no.
    #[error("reading the log's topics: {0}")]
    Log(#[from] LogError),
    /// Timely could not form the cluster.
    #[error("forming the timely cluster: {0}")]
    Cluster(String),
    /// The log no longer has records the views are built from.
    #[error(
        "{topic} partition {partition} starts at offset {earliest}, but the views need its records from offset \
         {needed} on ({}): records in between have expired from the log, so the views cannot be rebuilt (they \
         would be silently wrong). Reelflow creates its topics with retention.ms=-1; a topic made another way or \
         whose retention was shortened loses records. Restore the topic's records, or start from a snapshot that \
         covers them",
        if *needed == 0 { "no snapshot covers any of them" } else { "where the snapshot started from leaves off" }
    )]
    Expired {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Its first offset still in the log.
        earliest: u64,
        /// The first offset the views need: where the snapshot leaves
        /// off, 0 without one.
        needed: u64,
    },
}

/// The dataflows of this process, running until dropped or shut down.
pub struct Dataflows {
    client: PeekClient,
    shutdown: Arc<AtomicBool>,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
}

impl Dataflows {
    /// Starts this process's workers over `log`; for a cluster, returns
    /// once every process has connected.
    pub async fn start(log: AnyLog, options: DataflowOptions) -> Result<Self, StartError> {
        let mut partitions = Vec::new();
        for topic in crate::TOPICS {
            log.create_topic(topic, options.partitions).await?;
            for p in 0..log.partition_count(topic).await? {
                // Views from part of the log would be wrong without a word.
                let earliest = log.low_watermark(topic, p).await?;
                let needed = options
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.mark(topic, p))
                    .map_or(0, |m| m.offset);
                if earliest > needed {
                    return Err(StartError::Expired {
                        topic: topic.to_string(),
                        partition: p,
                        earliest,
                        needed,
                    });
                }
                partitions.push((topic.to_string(), p));
            }
        }
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Self::start_workers(log, runtime, partitions, options))
            .await
            .map_err(|e| StartError::Cluster(format!("start task failed: {e}")))?
    }

    fn start_workers(
        log: AnyLog,
        runtime: tokio::runtime::Handle,
        partitions: Vec<(String, u32)>,
        mut options: DataflowOptions,
    ) -> Result<Self, StartError> {
        let workers = options.cluster.workers;
        // Handed to each worker once, then let go: once fed, the views hold
        // all of it, and the snapshot would only double the memory.
        let snapshot = Mutex::new((options.snapshot.take(), workers));
        let retained = Arc::new(OnceLock::new());
        let metrics = Arc::new(Metrics::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| mpsc::channel::<Command>()).unzip();
        let receivers = Mutex::new(receivers.into_iter().map(Some).collect::<Vec<_>>());
        let threads = Arc::new(Mutex::new(vec![None; workers]));
        let client = PeekClient::new(
            senders,
            Arc::clone(&metrics),
            options.peek_timeout,
            options.cluster.peers(),
            Arc::clone(&retained),
        );
        let config = options.cluster.timely();
        let process = options.cluster.process;
        let stop = Arc::clone(&shutdown);
        let registered = Arc::clone(&threads);
        let agreed = Arc::clone(&retained);
        let guards = timely::execute(config, move |worker| {
            let local = worker.index() - process * workers;
            let commands = receivers.lock().expect("receivers lock")[local]
                .take()
                .expect("each worker takes its own receiver");
            registered.lock().expect("threads lock")[local] = Some(std::thread::current());
            let snapshot = {
                let mut handout = snapshot.lock().expect("snapshot lock");
                let mine = handout.0.clone();
                handout.1 -= 1;
                if handout.1 == 0 {
                    handout.0 = None;
                }
                mine
            };
            run_worker(
                worker,
                &log,
                &runtime,
                &partitions,
                &options,
                snapshot,
                &metrics,
                local,
                commands,
                &stop,
                &agreed,
            );
        })
        .map_err(StartError::Cluster)?;
        // Workers register their threads as they start; wait for all.
        let deadline = Instant::now() + Duration::from_secs(30);
        while threads.lock().expect("threads lock").iter().any(Option::is_none) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        client.set_threads(threads.lock().expect("threads lock").clone());
        Ok(Self {
            client,
            shutdown,
            guards: Some(guards),
        })
    }

    fn signal_stop(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.client.unpark_workers();
    }

    /// A client for reading the views.
    pub fn client(&self) -> PeekClient {
        self.client.clone()
    }

    /// Stops the workers and waits for them. In a cluster, every process
    /// must be shut down: a worker's exit waits for its peers'.
    pub fn shutdown(mut self) {
        self.signal_stop();
        if let Some(guards) = self.guards.take() {
            for result in guards.join() {
                if let Err(e) = result {
                    tracing::error!(error = %e, "a dataflow worker failed");
                }
            }
        }
    }
}

impl Drop for Dataflows {
    /// Tells the workers to stop without waiting for them, so dropping one
    /// process of a cluster (say, while a panic unwinds) cannot hang on its
    /// peers.
    fn drop(&mut self) {
        self.signal_stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn run_worker(
    worker: &mut timely::worker::Worker,
    log: &AnyLog,
    runtime: &tokio::runtime::Handle,
    partitions: &[(String, u32)],
    options: &DataflowOptions,
    from: Option<Arc<Snapshot>>,
    metrics: &Arc<Metrics>,
    local: usize,
    commands: mpsc::Receiver<Command>,
    shutdown: &AtomicBool,
    agreed: &OnceLock<Retained>,
) {
    // Nothing before a snapshot's frontier is readable: the snapshot holds
    // what closed before it as of the frontier.
    let mut proposal = Retained::proposed(options.history);
    if let Some(s) = &from {
        proposal = proposal.from_snapshot(s.frontier);
    }
    let Some(retained) = history::agree(worker, proposal, shutdown) else {
        return;
    };
    // Processes that loaded different snapshots (one was written between
    // their starts) would keep views of two states: restart instead, and
    // find the same latest one.
    assert!(
        retained.snapshot_agreed(),
        "the processes of the cluster started from different snapshots (frontiers {:?}); restarting to load the same",
        retained.snapshots
    );
    // Each partition from where the snapshot left it; one it covers none
    // of from its start, but never stamped before the snapshot's frontier.
    let resume: BTreeMap<(String, u32), Resume> = match &from {
        None => BTreeMap::new(),
        Some(s) => partitions
            .iter()
            .map(|(topic, partition)| {
                let r = match s.mark(topic, *partition) {
                    Some(m) => Resume {
                        offset: m.offset,
                        last: m.last,
                        malformed: m.malformed,
                    },
                    None => Resume {
                        last: s.frontier,
                        ..Resume::default()
                    },
                };
                ((topic.clone(), *partition), r)
            })
            .collect(),
    };
    // Every worker agreed on the same.
    let _ = agreed.set(retained);
    let source = SourceOptions {
        horizon: retained.horizon,
        ..options.source.clone()
    };
    let index = worker.index();
    let peers = worker.peers();
    let taps: Taps = Rc::default();
    let subscribers: Subscribers = Rc::default();
    let tapped_upper = Rc::new(Cell::new(0));
    // How far every view's arrangement is complete: its batches up to the
    // probe's frontier are in the trace. Reading it is O(1), where reading
    // every trace's upper walks their batches, on every wake-up.
    let complete = ProbeHandle::new();
    let traces = worker.dataflow::<Time, _, _>(|scope| {
        let mut sourced = log_source(
            scope,
            log.clone(),
            runtime.clone(),
            partitions,
            &resume,
            source,
            Arc::clone(metrics),
        );
        let (seeds, facts) = snapshot::feed(scope, from.as_deref());
        sourced.catalog = sourced.catalog.concat(facts.catalog);
        sourced.media = sourced.media.concat(facts.media);
        sourced.playback = sourced.playback.concat(facts.playback);
        let built = views::build(sourced, seeds, &options.windows);
        let mut arranging = Arranging {
            complete: complete.clone(),
            taps: Rc::clone(&taps),
            tapped: Vec::new(),
            stores: View::ALL.iter().map(|_| None).collect(),
        };
        for (view, rows) in built.rows {
            arranging.arrange(rows, view.def().name, &[(view, ROWS)]);
        }
        let figures = [(View::VideoStats, VIDEO_STATS), (View::Qoe, QOE)];
        arranging.read(built.figures, &figures);
        arranging.arrange(built.retention, "retention", &[(View::Retention, RETENTION)]);
        let watch_history = [(View::WatchHistory, WATCH_HISTORY)];
        arranging.arrange(built.watch_history, "watch_history", &watch_history);
        let Arranging { tapped, stores, .. } = arranging;
        deliver(
            scope.concatenate(tapped),
            Rc::clone(&subscribers),
            Rc::clone(&tapped_upper),
        );
        stores
            .into_iter()
            .map(|s| s.expect("every view is arranged"))
            .collect::<Vec<_>>()
    });
    // Fed: what the views need of it is in them now.
    drop(from);
    let traces: Traces = Rc::new(RefCell::new(traces));
    let outstanding: Outstanding = Rc::new(RefCell::new(HashMap::new()));
    let mut requests = peek_dataflow(
        worker,
        Rc::clone(&traces),
        Rc::clone(&outstanding),
        taps,
        Rc::clone(&subscribers),
    );
    let mut next_id = 0u64;
    let mut last_maintenance = Instant::now() - Duration::from_secs(1);
    let mut published = 0;
    while !shutdown.load(Ordering::SeqCst) {
        worker.step_or_park(Some(Duration::from_millis(10)));
        let mut sent = false;
        while let Ok(command) = commands.try_recv() {
            next_id += 1;
            match command {
                Command::Peek {
                    view,
                    selector,
                    as_of,
                    reply,
                } => {
                    let routed = PeekRequest::routed(RequestKind::Peek, next_id, index, view, selector, as_of, peers);
                    if routed.is_empty() {
                        let _ = reply.send(Ok(Vec::new()));
                        continue;
                    }
                    outstanding
                        .borrow_mut()
                        .insert(next_id, Waiting::new(routed.len(), reply));
                    routed.into_iter().for_each(|r| requests.send(r));
                }
                Command::Subscribe {
                    view,
                    selector,
                    mut subscriber,
                } => {
                    let as_of = subscriber.as_of();
                    let routed =
                        PeekRequest::routed(RequestKind::Subscribe, next_id, index, view, selector, as_of, peers);
                    subscriber.expect_replies(routed.len());
                    subscribers.borrow_mut().insert(next_id, subscriber);
                    metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
                    routed.into_iter().for_each(|r| requests.send(r));
                }
            }
            sent = true;
        }
        // Release what the taps' frontier allows; end subscriptions that
        // are over on every worker.
        let ended: Vec<(u64, View, bool)> = {
            let upper = tapped_upper.get();
            let mut subscribers = subscribers.borrow_mut();
            let mut ended = Vec::new();
            subscribers.retain(|&id, s| {
                let keep = s.release(upper);
                if !keep {
                    ended.push((id, s.view(), s.dropped_as_too_slow()));
                }
                keep
            });
            ended
        };
        for (id, view, too_slow) in ended {
            metrics.subscriptions.fetch_sub(1, Ordering::Relaxed);
            if too_slow {
                metrics.subscriptions_dropped.fetch_add(1, Ordering::Relaxed);
            }
            for r in PeekRequest::routed(RequestKind::Unsubscribe, id, index, view, Selector::All, 0, peers) {
                requests.send(r);
            }
            sent = true;
        }
        if sent {
            requests.flush();
        }
        publish_frontier(&complete, metrics, local, &mut published);
        if last_maintenance.elapsed() >= Duration::from_millis(250) {
            last_maintenance = Instant::now();
            maintain(&traces, retained, metrics, local);
            if local == 0 {
                metrics.sample_rate();
            }
        }
    }
    drop(requests);
    for (_, s) in subscribers.borrow_mut().drain() {
        s.shut_down();
    }
    traces.borrow_mut().clear();
    for id in worker.installed_dataflows() {
        worker.drop_dataflow(id);
    }
}

/// Publishes how far every view is complete on this worker, when it moved:
/// what [`PeekClient::readable_at`] reads. A peek still checks the trace's
/// own upper; the probe never runs ahead of it.
fn publish_frontier(complete: &ProbeHandle<Time>, metrics: &Metrics, local: usize, published: &mut Time) {
    let frontier = complete.with_frontier(|f| f.first().copied().unwrap_or(Time::MAX));
    if frontier != *published {
        *published = frontier;
        metrics.frontier.lock().expect("metrics lock").insert(local, frontier);
    }
}

/// The views' arrangements as the dataflow is built: a store per view,
/// and the taps of their batches for subscriptions.
struct Arranging<'s> {
    /// Passed by every arrangement's batches.
    complete: ProbeHandle<Time>,
    taps: Taps,
    tapped: Vec<Stream<'s, Time, Vec<TapUpdate>>>,
    stores: Vec<Option<Box<dyn ViewStore>>>,
}

impl<'s> Arranging<'s> {
    /// Arranges `coll` once, as `name`, and reads it as each of `views` in
    /// its shape.
    fn arrange<K, V>(&mut self, coll: Coll<'s, (K, V)>, name: &str, views: &[(View, Shape<K, V>)])
    where
        K: ExchangeData + Hashable + Ord,
        V: ExchangeData + Ord,
    {
        self.read(coll.arrange_by_key_named(name), views);
    }

    /// Reads `arranged` as each of `views` in its shape.
    fn read<K, V>(&mut self, arranged: Arrangement<'s, ViewTrace<K, V>>, views: &[(View, Shape<K, V>)])
    where
        K: Ord + Clone + 'static,
        V: Ord + Clone + 'static,
    {
        let batches = arranged.stream.probe_with(&self.complete);
        for &(view, shape) in views {
            self.tapped
                .push(tap(batches.clone(), view, Rc::clone(&self.taps), shape));
            self.stores[view as usize] = Some(Box::new(Store::new(arranged.trace.clone(), shape)));
        }
    }
}

/// Keeps what is `retained` of the views readable and lets the rest
/// compact; publishes the arrangement sizes.
fn maintain(traces: &Traces, retained: Retained, metrics: &Metrics, local: usize) {
    let mut traces = traces.borrow_mut();
    let mut sizes = Vec::with_capacity(traces.len());
    for (view, store) in View::ALL.into_iter().zip(traces.iter_mut()) {
        let upper = store.upper();
        store.compact_to(retained.since(upper));
        sizes.push((view, store.len()));
    }
    let mut updates = metrics.arrangement_updates.lock().expect("metrics lock");
    for (view, n) in sizes {
        updates.insert((view, local), n);
    }
}
