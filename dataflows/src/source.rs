//! The log source: each worker reads the partitions assigned to it and
//! turns records into timestamped facts.
//!
//! **Timestamps.** A record's time is its log time (milliseconds), made
//! monotone per partition — `max(log time, previous time, idle floor)` —
//! and rounded up to the next multiple of `tick` ([`stamp`]). The log
//! assigns log time when it accepts a record, so replaying the same log
//! gives the same times, and the views the same contents at every time.
//! The tick lets the records of a few milliseconds share one time, which
//! is what differential's work is counted in: at 10 ms a view is at most
//! 10 ms less fresh, and under load the dataflows do far less work per
//! record than with one time per millisecond.
//!
//! **Catching up.** Nobody can read a time older than the retained history
//! (`as_of` stops there), so when the dataflows start, times before
//! `horizon` (the start, less the history) only need to add up right at
//! the horizon. Records stamped before it are rounded up to a coarser
//! `catch_up_tick` (1 s), and never past the horizon (`Stamping`): a
//! restart replays a day of log in a few tens of thousands of times
//! instead of millions, each with far more records to share its work, and
//! every readable time still has exactly the contents of a replay without
//! it. The exact stamp stays with each playback fact (`logged_at`), so a
//! window retracts it at its own time plus the window.
//!
//! **Frontier.** A worker may not promise a time until every partition it
//! reads has moved past it. A busy partition moves with its records. An
//! idle one would stall everyone, so the reader checks it against the
//! log's high watermark: when everything below the watermark has been read,
//! no record the partition gets later can carry a log time before the
//! moment of that check (less `idle_grace`, which covers records accepted
//! but not yet visible, and clock skew with a remote broker). That moment
//! is the partition's *idle floor*. A record that still arrives below its
//! floor is moved up to it and counted as reclocked.
//!
//! **Bad data.** A record that does not decode is counted (per partition,
//! visible in `source_progress.malformed`) and skipped.
//!
//! Reading is async (the log clients are), so a tokio task per worker and
//! topic polls the log and hands batches to the worker's operator through
//! a bounded channel, waking it; a slow dataflow slows the readers down
//! rather than buffering without bound. An activation of the operator takes
//! about one poll's worth of records (`batch`) and then lets the operators
//! downstream run. Taking all the channel held (up to 64 polls) made every
//! operator's buffers and batches half a million records deep during a
//! replay: its peak memory was 3.0 GB instead of 1.7 GB, and 13 % of the
//! workers' time went to page faults on fresh memory, against 3 % now.
//! The price: one worker runs the whole dataflow more often for the same
//! records, and replayed 5–11 % slower; two workers were as fast or faster
//! (BENCHMARKS.md, "Run 33").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use differential_dataflow::AsCollection;
use reelflow_ingest::log::{AnyLog, EventLog, PartitionReader, Record};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use tokio::sync::mpsc;

use crate::datum::{Datum, Row};
use crate::facts::{CatalogFact, Fact, MediaFact, PlaybackFact, decode};
use crate::metrics::{Metrics, PartitionStatus};
use crate::time::{Coll, Time, now_ms};

/// How sources read the log.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// How often an idle partition is checked against its high watermark.
    pub idle_check: Duration,
    /// How far behind the check's clock reading an idle floor is put.
    pub idle_grace: Duration,
    /// How often `source_progress` rows are refreshed.
    pub progress_every: Duration,
    /// Most records per poll of the log; about as many are taken per
    /// activation of the source.
    pub batch: usize,
    /// Times are rounded up to a multiple of this.
    pub tick: Duration,
    /// Times before `horizon` are rounded up to a multiple of this instead.
    pub catch_up_tick: Duration,
    /// The oldest time that will be read, set when the dataflows start:
    /// what every process of the cluster agreed ([`crate::history`]).
    pub horizon: Time,
}

/// A record's time: its log time, at least `lower` (the partition's
/// previous time or idle floor), rounded up to a multiple of `tick_ms`.
pub fn stamp(log_time_ms: i64, lower: Time, tick_ms: Time) -> Time {
    let t = (log_time_ms.max(0) as Time).max(lower);
    t.div_ceil(tick_ms.max(1)) * tick_ms.max(1)
}

/// How records are stamped: [`stamp`], then coarser before the horizon.
#[derive(Clone, Copy, Debug)]
struct Stamping {
    tick: Time,
    catch_up_tick: Time,
    horizon: Time,
}

impl Stamping {
    fn of(options: &SourceOptions) -> Self {
        Self {
            tick: options.tick.as_millis() as Time,
            catch_up_tick: options.catch_up_tick.as_millis() as Time,
            horizon: options.horizon,
        }
    }

    /// The exact stamp of a record at `log_time_ms` after `lower`.
    fn exact(&self, log_time_ms: i64, lower: Time) -> Time {
        stamp(log_time_ms, lower, self.tick)
    }

    /// The time an exact stamp is emitted at: itself from the horizon on,
    /// before it rounded up to `catch_up_tick` but not past the horizon.
    /// Monotone, so the order of a partition's times is kept.
    fn time(&self, exact: Time) -> Time {
        if exact >= self.horizon {
            return exact;
        }
        stamp(0, exact, self.catch_up_tick).min(self.horizon)
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            idle_check: Duration::from_millis(5),
            idle_grace: Duration::from_millis(25),
            progress_every: Duration::from_millis(200),
            batch: 8192,
            tick: Duration::from_millis(10),
            catch_up_tick: Duration::from_secs(1),
            horizon: 0,
        }
    }
}

/// Where a partition's reading resumes, as a snapshot left it
/// (`crate::snapshot`); from offset 0 without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The first offset to read.
    pub offset: u64,
    /// The least stamp a record read from there can get.
    pub last: Time,
    /// Malformed records before it.
    pub malformed: u64,
}

/// What reader tasks tell the operator.
enum Feed {
    Records(Vec<Record>),
    /// Partition `partition` of the task's topic: read up to `next`, the log
    /// has `high_watermark`; if caught up, at `caught_up_at` (ms).
    Position {
        topic: Arc<str>,
        partition: u32,
        high_watermark: u64,
        caught_up_at: Option<u64>,
    },
}

/// One partition's clock and counters, kept by the worker reading it.
#[derive(Default)]
struct PartitionClock {
    /// Time of the last record emitted.
    last: Time,
    /// Idle floor: no later record is stamped before it.
    floor: Time,
    next_offset: u64,
    high_watermark: u64,
    malformed: u64,
    /// The row last put into `source_progress`.
    reported: Option<(Row, Row)>,
}

impl PartitionClock {
    /// The earliest time this partition may still emit.
    fn lower(&self) -> Time {
        self.last.max(self.floor)
    }
}

/// The partitions `worker` of `peers` reads: the `(topic, partition)` pairs
/// in order, dealt round-robin, so every process computes the same split.
pub fn assignment(partitions: &[(String, u32)], worker: usize, peers: usize) -> Vec<(String, u32)> {
    partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| i % peers == worker)
        .map(|(_, p)| p.clone())
        .collect()
}

/// What the sources read, split by kind.
pub struct Sourced<'s> {
    /// From `reelflow.catalog`.
    pub catalog: Coll<'s, CatalogFact>,
    /// From `reelflow.uploads` and `reelflow.processing`.
    pub media: Coll<'s, MediaFact>,
    /// From `reelflow.playback`.
    pub playback: Coll<'s, PlaybackFact>,
    /// The sources' own `source_progress` rows.
    pub progress: Coll<'s, (Row, Row)>,
}

/// Reads this worker's share of `partitions` (every `(topic, partition)` of
/// the log), each from where `resume` says (offset 0 if it says nothing),
/// split by kind.
pub fn log_source<'s>(
    scope: Scope<'s, Time>,
    log: AnyLog,
    runtime: tokio::runtime::Handle,
    partitions: &[(String, u32)],
    resume: &BTreeMap<(String, u32), Resume>,
    options: SourceOptions,
    metrics: Arc<Metrics>,
) -> Sourced<'s> {
    let mine = assignment(partitions, scope.index(), scope.peers());
    let resume: BTreeMap<(String, u32), Resume> = mine
        .iter()
        .map(|p| (p.clone(), resume.get(p).copied().unwrap_or_default()))
        .collect();
    let worker = scope.worker();
    // One output per kind, so no record is copied to be split.
    let mut builder = OperatorBuilder::new("LogSource".to_owned(), scope);
    let info = builder.operator_info();
    let (catalog_out, catalog) = builder.new_output();
    let (media_out, media) = builder.new_output();
    let (playback_out, playback) = builder.new_output();
    let (progress_out, progress) = builder.new_output();
    let mut outputs = (
        OutputBuilder::<_, Builder<CatalogFact>>::from(catalog_out),
        OutputBuilder::<_, Builder<MediaFact>>::from(media_out),
        OutputBuilder::<_, Builder<PlaybackFact>>::from(playback_out),
        OutputBuilder::<_, Builder<(Row, Row)>>::from(progress_out),
    );
    builder.build(
        // One capability per output, all at the same time.
        move |mut caps| {
            let activator = worker.sync_activator_for(info.address.to_vec());
            let wake = Arc::new(activator);
            let (tx, mut rx) = mpsc::channel::<Feed>(64);
            let mut by_topic: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
            for ((t, p), r) in &resume {
                by_topic.entry(t.clone()).or_default().push((*p, r.offset));
            }
            for (topic, parts) in by_topic {
                runtime.spawn(read_topic(
                    log.clone(),
                    topic,
                    parts,
                    options.clone(),
                    tx.clone(),
                    Arc::clone(&wake),
                ));
            }
            drop(tx);
            let topics: Vec<Arc<str>> = crate::TOPICS.iter().map(|t| Arc::from(*t)).collect();
            let topic_index = move |t: &str| crate::TOPICS.iter().position(|x| *x == t);
            let mut clocks: BTreeMap<(usize, u32), PartitionClock> = resume
                .iter()
                .filter_map(|((t, p), r)| {
                    let clock = PartitionClock {
                        last: r.last,
                        next_offset: r.offset,
                        high_watermark: r.offset,
                        malformed: r.malformed,
                        ..PartitionClock::default()
                    };
                    Some(((topic_index(t)?, *p), clock))
                })
                .collect();
            let self_activator = worker.activator_for(info.address.clone());
            // `None` until the first activation, which publishes every
            // partition's status at once: `/metrics` lists them from the start.
            let mut last_progress: Option<Instant> = None;
            let grace = options.idle_grace.as_millis() as Time;
            let stamping = Stamping::of(&options);
            let mut read = Read::default();
            move |_frontiers| {
                // One poll's worth at a time (see the module doc).
                let mut budget = options.batch;
                let mut records = 0u64;
                let mut reclocked = 0u64;
                let mut malformed = 0u64;
                while budget > 0 {
                    match rx.try_recv() {
                        Ok(Feed::Records(batch)) => {
                            budget = budget.saturating_sub(batch.len());
                            for r in batch {
                                let Some(clock) = topic_index(&r.topic).and_then(|t| clocks.get_mut(&(t, r.partition)))
                                else {
                                    continue;
                                };
                                let log_time = r.timestamp_ms.max(0) as Time;
                                let exact = stamping.exact(r.timestamp_ms, clock.lower());
                                let ts = stamping.time(exact);
                                if log_time < clock.floor && clock.floor > clock.last {
                                    reclocked += 1;
                                }
                                clock.last = exact;
                                clock.next_offset = r.offset + 1;
                                records += 1;
                                match decode(&r.topic, &r.value) {
                                    Ok(Fact::Catalog(c)) => read.catalog.push((c, ts, 1)),
                                    Ok(Fact::Media(m)) => read.media.push((m, ts, 1)),
                                    Ok(Fact::Playback(mut p)) => {
                                        p.logged_at = exact;
                                        read.playback.push((p, ts, 1));
                                    }
                                    Err(reason) => {
                                        malformed += 1;
                                        if clock.malformed == 0 {
                                            tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "skipping malformed record");
                                        }
                                        clock.malformed += 1;
                                    }
                                }
                            }
                        }
                        Ok(Feed::Position {
                            topic,
                            partition,
                            high_watermark,
                            caught_up_at,
                        }) => {
                            if let Some(clock) = topic_index(&topic).and_then(|t| clocks.get_mut(&(t, partition))) {
                                clock.high_watermark = clock.high_watermark.max(high_watermark);
                                if let Some(at) = caught_up_at {
                                    clock.floor = clock.floor.max(at.saturating_sub(grace));
                                }
                            }
                        }
                        Err(_) => break,
                    }
                }
                if budget == 0 {
                    self_activator.activate();
                }
                metrics.records.fetch_add(records, Ordering::Relaxed);
                metrics.reclocked.fetch_add(reclocked, Ordering::Relaxed);
                metrics.malformed.fetch_add(malformed, Ordering::Relaxed);

                if last_progress.is_none_or(|t| t.elapsed() >= options.progress_every) {
                    last_progress = Some(Instant::now());
                    let at = *caps[0].time();
                    let mut statuses = metrics.partitions.lock().expect("metrics lock");
                    for ((t, partition), clock) in clocks.iter_mut() {
                        let topic = &topics[*t];
                        let high_watermark = clock.high_watermark.max(clock.next_offset);
                        let status = PartitionStatus {
                            offset: clock.next_offset,
                            high_watermark,
                            ts: clock.lower(),
                            malformed: clock.malformed,
                        };
                        statuses.insert((topic.to_string(), *partition), status);
                        let row = progress_row(topic, *partition, &status);
                        if clock.reported.as_ref() != Some(&row) {
                            if let Some(old) = clock.reported.replace(row.clone()) {
                                read.progress.push((old, at, -1));
                            }
                            read.progress.push((row, at, 1));
                        }
                    }
                }

                give(&mut outputs.0, &caps[0], &mut read.catalog);
                give(&mut outputs.1, &caps[1], &mut read.media);
                give(&mut outputs.2, &caps[2], &mut read.playback);
                give(&mut outputs.3, &caps[3], &mut read.progress);
                let lower = stamping.time(
                    clocks
                        .values()
                        .map(|c| stamping.exact(0, c.lower()))
                        .min()
                        .unwrap_or_else(|| stamping.exact(0, now_ms())),
                );
                if lower > *caps[0].time() {
                    caps.iter_mut().for_each(|c| c.downgrade(&lower));
                }
                // Idle workers move with the clock; everyone refreshes progress.
                self_activator.activate_after(if clocks.is_empty() {
                    options.idle_check
                } else {
                    options.progress_every
                });
            }
        },
    );
    Sourced {
        catalog: catalog.as_collection(),
        media: media.as_collection(),
        playback: playback.as_collection(),
        progress: progress.as_collection(),
    }
}

/// The container builder of an output of the source.
type Builder<D> = CapacityContainerBuilder<Vec<(D, Time, isize)>>;

/// What one activation of the source read, by output.
#[derive(Default)]
struct Read {
    catalog: Vec<(CatalogFact, Time, isize)>,
    media: Vec<(MediaFact, Time, isize)>,
    playback: Vec<(PlaybackFact, Time, isize)>,
    progress: Vec<((Row, Row), Time, isize)>,
}

/// Sends `data` to `output` at `cap`'s time.
fn give<D: Clone + 'static>(
    output: &mut OutputBuilder<Time, Builder<D>>,
    cap: &Capability<Time>,
    data: &mut Vec<(D, Time, isize)>,
) {
    if !data.is_empty() {
        output.activate().session(cap).give_iterator(data.drain(..));
    }
}

fn progress_row(topic: &str, partition: u32, s: &PartitionStatus) -> (Row, Row) {
    (
        vec![Datum::text(topic), Datum::Int(i64::from(partition))],
        vec![
            Datum::Int(s.offset as i64),
            Datum::Int(s.high_watermark as i64),
            Datum::Int(s.high_watermark.saturating_sub(s.offset) as i64),
            Datum::Timestamp(s.ts as i64),
            Datum::Int(s.malformed as i64),
        ],
    )
}

/// Polls `partitions` of `topic`, each from its offset, into `tx`, and
/// reports caught-up partitions, until the operator goes away.
async fn read_topic(
    log: AnyLog,
    topic: String,
    partitions: Vec<(u32, u64)>,
    options: SourceOptions,
    tx: mpsc::Sender<Feed>,
    wake: Arc<timely::scheduling::SyncActivator>,
) {
    let name: Arc<str> = Arc::from(topic.as_str());
    let mut reader = loop {
        match log.reader(&topic, &partitions).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot read the log yet; retrying");
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut next: BTreeMap<u32, u64> = partitions.iter().copied().collect();
    let mut last_check = Instant::now() - options.idle_check;
    let mut last_full_check = Instant::now();
    loop {
        let batch = match reader.poll(options.batch, options.idle_check).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "reading the log failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                Vec::new()
            }
        };
        let mut busy = std::collections::BTreeSet::new();
        for r in &batch {
            next.insert(r.partition, r.offset + 1);
            busy.insert(r.partition);
        }
        if !batch.is_empty() {
            if tx.send(Feed::Records(batch)).await.is_err() {
                return;
            }
            let _ = wake.activate();
        }
        if last_check.elapsed() >= options.idle_check {
            last_check = Instant::now();
            // Busy partitions move with their records; their watermark (for
            // the lag in `source_progress`) is refreshed less often.
            let all = last_full_check.elapsed() >= options.progress_every;
            if all {
                last_full_check = Instant::now();
            }
            for (&partition, &read_to) in &next {
                if busy.contains(&partition) && !all {
                    continue;
                }
                // The clock is read before the watermark: anything the
                // watermark misses was accepted after this moment.
                let observed = now_ms();
                let Ok(high_watermark) = log.high_watermark(&topic, partition).await else {
                    continue;
                };
                let feed = Feed::Position {
                    topic: Arc::clone(&name),
                    partition,
                    high_watermark,
                    caught_up_at: (read_to >= high_watermark).then_some(observed),
                };
                if tx.send(feed).await.is_err() {
                    return;
                }
            }
            let _ = wake.activate();
        }
        if tx.is_closed() {
            return;
        }
    }
}
