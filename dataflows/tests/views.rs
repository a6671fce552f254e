//! Every view of the dataflows against its from-scratch recomputation
//! (`reelflow_dataflows::reference`), on seeded random logs with late,
//! duplicated and malformed events, with 1, 2 and 4 workers, with two
//! timely processes, across a restart, and while events keep arriving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reelflow_dataflows::Windows;
use reelflow_dataflows::facts::Fact;
use reelflow_dataflows::now_ms;
use reelflow_dataflows::reference;
use reelflow_dataflows::snapshot::{Compactor, Snapshot};
use reelflow_dataflows::workload as common;
use reelflow_dataflows::{
    ClusterConfig, DataflowOptions, Dataflows, Datum, PeekClient, PeekError, Row, Selector, SubscribeEvent,
    Subscription, Time, Update, View,
};
use reelflow_ingest::events::{PlaybackEvent, TopicEvent};
use reelflow_ingest::log::{AnyLog, EmbeddedLog, EmbeddedOptions, EventLog, FsyncPolicy};
use uuid::Uuid;

/// The workloads' short windows (`workload::short_windows`).
fn windows() -> Windows {
    common::short_windows()
}

/// An odd tick, so rounding is exercised.
const TICK_MS: Time = 7;

fn options(cluster: ClusterConfig) -> DataflowOptions {
    let mut options = DataflowOptions {
        cluster,
        windows: windows(),
        history: Duration::from_secs(3600),
        partitions: 3,
        ..DataflowOptions::default()
    };
    options.source.tick = Duration::from_millis(TICK_MS);
    options
}

/// Dataflows on `workers` workers over a new, empty embedded log.
async fn on_a_fresh_log(workers: usize) -> (tempfile::TempDir, AnyLog, Dataflows) {
    let dir = tempfile::tempdir().unwrap();
    let log = common::embedded(dir.path());
    common::create_topics(&log, 3).await;
    let dataflows = Dataflows::start(log.clone(), options(ClusterConfig::single(workers)))
        .await
        .unwrap();
    (dir, log, dataflows)
}

/// A fresh embedded log with the topics, and workload `seed` of `phases`
/// phases appended to it, `pause` apart.
async fn written_log(seed: u64, phases: usize, pause: Duration) -> (tempfile::TempDir, AnyLog, common::Workload) {
    let dir = tempfile::tempdir().unwrap();
    let log = common::embedded(dir.path());
    common::create_topics(&log, 3).await;
    let workload = common::workload(seed, phases);
    common::append_all(&log, &workload, pause).await;
    (dir, log, workload)
}

/// Every view's rows, by view.
type Views = BTreeMap<View, Vec<(Row, Row)>>;

/// Every view at each of `times`, recomputed from scratch.
fn expected(facts: &[(Time, Fact)], times: &[Time], windows: &Windows) -> Vec<(Time, Views)> {
    times
        .iter()
        .map(|&t| (t, reference::views_at(facts, t, windows)))
        .collect()
}

/// Checks every view at every time in `times` against the reference, plus
/// key and range lookups, and the malformed count in `source_progress`.
async fn check(
    client: &PeekClient,
    facts: &[(Time, Fact)],
    malformed: usize,
    times: &[Time],
    windows: &Windows,
    label: &str,
) {
    for (t, expected) in expected(facts, times, windows) {
        client
            .wait_until_readable(t, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{label}: views never readable at {t}: {e}"));
        for view in View::ALL {
            if view == View::SourceProgress {
                continue;
            }
            let got = client.peek(view, Selector::All, Some(t)).await.expect("peek");
            assert_eq!(got.as_of, t);
            assert_eq!(
                got.rows,
                expected[&view],
                "{label}: view {} differs from the reference at {t}",
                view.def().name
            );
        }
        // Lookups by key and by key prefix read the same rows.
        let stats = &expected[&View::VideoStats];
        if let Some((key, _)) = stats.first() {
            let got = client
                .peek(View::VideoStats, Selector::Keys(vec![key.clone()]), Some(t))
                .await
                .expect("peek by key");
            assert_eq!(got.rows, vec![stats[0].clone()], "{label}: key lookup at {t}");
        }
        // Views arranged in the dataflow's types, not as rows: ranges whose
        // bounds are keys, prefixes of keys or name none, and keys that are
        // missing or not of the key's types.
        for view in [View::Qoe, View::Retention, View::WatchHistory] {
            let rows = &expected[&view];
            let n = rows.len();
            if n == 0 {
                continue;
            }
            let (from, to) = (rows[n / 3].0.clone(), rows[2 * n / 3].0.clone());
            let selectors = [
                Selector::Range {
                    from: Some(from.clone()),
                    to: Some(to.clone()),
                },
                Selector::Range {
                    from: Some(vec![Datum::Null]),
                    to: Some(vec![to[0].clone(), Datum::Null]),
                },
                Selector::Range {
                    from: Some(vec![from[0].clone(), Datum::Int(-1)]),
                    to: None,
                },
                Selector::prefix(vec![from[0].clone()]),
                Selector::prefix(vec![Datum::Int(7)]),
                Selector::Keys(vec![
                    to.clone(),
                    vec![Datum::Int(7)],
                    from.clone(),
                    vec![Datum::Uuid(Uuid::nil())],
                    rows[0].0.clone(),
                ]),
            ];
            for selector in selectors {
                let got = client.peek(view, selector.clone(), Some(t)).await.expect("peek");
                let want: Vec<_> = rows.iter().filter(|(k, _)| selector.matches(k)).cloned().collect();
                assert_eq!(got.rows, want, "{label}: {} by {selector:?} at {t}", view.def().name);
            }
        }
        let retention = &expected[&View::Retention];
        if let Some((key, _)) = retention.last() {
            let video = key[0].clone();
            let got = client
                .peek(View::Retention, Selector::prefix(vec![video.clone()]), Some(t))
                .await
                .expect("peek by range");
            let want: Vec<_> = retention.iter().filter(|(k, _)| k[0] == video).cloned().collect();
            assert_eq!(got.rows.len(), 100, "{label}: a retention curve has 100 buckets");
            assert_eq!(got.rows, want, "{label}: range lookup at {t}");
        }
    }
    check_progress(client, malformed, label).await;
}

/// Malformed records are counted, per partition, in source_progress.
async fn check_progress(client: &PeekClient, malformed: usize, label: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let progress = client
            .peek(View::SourceProgress, Selector::All, None)
            .await
            .expect("peek");
        let counted: i64 = progress
            .rows
            .iter()
            .map(|(_, v)| match v[4] {
                Datum::Int(n) => n,
                _ => panic!("malformed is an integer"),
            })
            .sum();
        let lag: i64 = progress
            .rows
            .iter()
            .map(|(_, v)| if let Datum::Int(n) = v[2] { n } else { 0 })
            .sum();
        if counted == malformed as i64 && lag == 0 && progress.rows.len() == 12 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{label}: source_progress shows {counted} malformed (want {malformed}), lag {lag}: {:?}",
            progress.rows
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_match_the_reference_with_1_2_and_4_workers() {
    let mut lives = Vec::new();
    for seed in 1..=5 {
        let (_dir, log, workload) = written_log(seed, 5, Duration::from_millis(120)).await;
        let (facts, malformed, times) = common::stamped(&log, TICK_MS).await;
        assert_eq!(malformed, workload.malformed);
        lives.push(reference::session_counts(&facts, *times.last().unwrap(), &windows()));
        for workers in [1, 2, 4] {
            let dataflows = Dataflows::start(log.clone(), options(ClusterConfig::single(workers)))
                .await
                .expect("start");
            let label = format!("seed {seed}, {workers} workers");
            check(&dataflows.client(), &facts, malformed, &times, &windows(), &label).await;
            dataflows.shutdown();
        }
    }
    // The workloads closed sessions, and started some again: a session's
    // records more than `session_idle` apart.
    assert!(lives.iter().any(|l| l.closed > 0), "sessions closed: {lives:?}");
    assert!(
        lives.iter().any(|l| l.reopened > 0),
        "sessions started again: {lives:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_timely_processes_match_the_reference() {
    for seed in [7, 8] {
        two_processes(seed, false).await;
    }
}

/// Two processes start from a snapshot made by none of them (a one-worker
/// fold): each loads it, feeds its share, and the exchanges put every key
/// where the cluster keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_timely_processes_from_a_snapshot_match_the_reference() {
    two_processes(9, true).await;
}

async fn two_processes(seed: u64, from_snapshot: bool) {
    let (_dir, log, _) = written_log(seed, 4, Duration::from_millis(100)).await;
    let (facts, malformed, mut times) = common::stamped(&log, TICK_MS).await;
    let snapshot = from_snapshot.then(|| {
        let mut stamps: Vec<Time> = facts.iter().map(|(t, _)| *t).collect();
        stamps.sort();
        let frontier = stamps[stamps.len() / 2] + 1;
        times.retain(|t| *t > frontier);
        times.insert(0, frontier);
        frontier
    });
    let snapshot = match snapshot {
        Some(frontier) => {
            let mut compactor = Compactor::new(&windows(), TICK_MS);
            compactor.advance(&common::read_back(&log).await, frontier);
            Some(Arc::new(compactor.snapshot()))
        }
        None => None,
    };
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    // Process 1 starts later and keeps a second less history, as a pod
    // started later or configured apart would.
    let start = |process: usize| {
        let cluster = ClusterConfig::explicit(2, process, addresses.clone()).unwrap();
        let mut options = options(cluster);
        options.history -= Duration::from_secs(process as u64);
        options.snapshot = snapshot.clone();
        let log = log.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300 * process as u64)).await;
            Dataflows::start(log, options).await
        }
    };
    let (a, b) = tokio::join!(start(0), start(1));
    let (a, b) = (a.expect("process 0"), b.expect("process 1"));
    assert_eq!(a.client().peers(), 4);
    // Each process answers for the whole cluster.
    let (ca, cb) = (a.client(), b.client());
    let checked = tokio::spawn(async move {
        check(&ca, &facts, malformed, &times, &windows(), "process 0 of 2").await;
        check(&cb, &facts, malformed, &times, &windows(), "process 1 of 2").await;
        // Both keep the same past readable: the later start's horizon and
        // the shorter history.
        let (ra, rb) = (ca.retained().expect("agreed"), cb.retained().expect("agreed"));
        assert_eq!(ra, rb, "the processes agree on what stays readable");
        assert_eq!(
            ra.history,
            options(ClusterConfig::single(1)).history.as_millis() as Time - 1000
        );
    })
    .await;
    let checked = match checked {
        Ok(()) if seed == 7 => {
            // Subscriptions over the cluster, taken on both processes, on a
            // fresh workload appended to the same log.
            let (ca, cb, log) = (a.client(), b.client(), log.clone());
            tokio::spawn(async move { subscriptions_follow_the_reference(&log, &[ca, cb], 70, "2 processes").await })
                .await
        }
        other => other,
    };
    // Shut down together: each waits for its peer's workers.
    let stop = |d: Dataflows| tokio::task::spawn_blocking(move || d.shutdown());
    let (x, y) = tokio::join!(stop(a), stop(b));
    x.unwrap();
    y.unwrap();
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_identical_contents() {
    let (_dir, log, _) = written_log(11, 4, Duration::from_millis(100)).await;
    let (_, _, times) = common::stamped(&log, TICK_MS).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dataflows = Dataflows::start(log.clone(), options(ClusterConfig::single(2)))
            .await
            .unwrap();
        let client = dataflows.client();
        let mut seen = Vec::new();
        for &t in &times {
            client.wait_until_readable(t, Duration::from_secs(30)).await.unwrap();
            for view in View::ALL.into_iter().filter(|v| *v != View::SourceProgress) {
                seen.push(client.peek(view, Selector::All, Some(t)).await.unwrap());
            }
        }
        dataflows.shutdown();
        runs.push(seen);
    }
    assert_eq!(
        runs[0], runs[1],
        "a replay of the same log gives the same views at every time"
    );
}

/// A restart once part of the log is older than the retained history: the
/// sources stamp those records coarsely to catch up faster, and every time
/// still readable has exactly the reference's contents, windows included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_past_the_history_keeps_every_readable_time_exact() {
    // Readable history slides with the clock, so a time is checked only if
    // it stays readable for a while (`MARGIN`) after the dataflows caught
    // up; windows longer than that still hold records from before the
    // horizon when it is checked.
    const HISTORY: Duration = Duration::from_secs(10);
    const MARGIN: Time = 3_000;
    let windows = Windows {
        concurrent: Duration::from_secs(8),
        trending: vec![
            ("1h".into(), Duration::from_secs(7)),
            ("24h".into(), Duration::from_secs(12)),
        ],
        trending_top: 5,
        session_idle: Duration::from_secs(8),
    };
    for catch_up_ms in [1000, 61] {
        let label = format!("catching up in {catch_up_ms} ms ticks");
        // A log of its own, so how long the pass before took does not move
        // this one's times out of the history.
        let (_dir, log, _) = written_log(13, 6, Duration::from_millis(400)).await;
        let (facts, malformed, _) = common::stamped(&log, TICK_MS).await;
        let mut times: Vec<Time> = facts.iter().map(|(t, _)| *t).collect();
        times.sort();
        times.dedup();
        let (first, middle, last) = (times[0], times[times.len() / 2], times[times.len() - 1]);
        // Times an event was stamped at, and later ones while windows end,
        // from about the horizon on: at most 24, spread out, their views
        // recomputed now, while the log grows old.
        let mut candidates: Vec<Time> = times
            .iter()
            .flat_map(|t| (0..=12).map(move |s| t + s * 1_000))
            .filter(|t| *t > middle && *t <= last + 13_000)
            .collect();
        candidates.sort();
        candidates.dedup();
        let step = candidates.len().div_ceil(24).max(1);
        let candidates: Vec<Time> = candidates.into_iter().step_by(step).collect();
        let expected = expected(&facts, &candidates, &windows);
        // Until the middle of the log is as old as the history.
        let old = middle + HISTORY.as_millis() as Time;
        tokio::time::sleep(Duration::from_millis(old.saturating_sub(now_ms()))).await;
        let mut options = options(ClusterConfig::single(2));
        options.windows = windows.clone();
        options.history = HISTORY;
        options.source.catch_up_tick = Duration::from_millis(catch_up_ms);
        let started = now_ms();
        let dataflows = Dataflows::start(log.clone(), options).await.unwrap();
        let client = dataflows.client();
        let horizon = started - HISTORY.as_millis() as Time;
        assert!(first < horizon, "{label}: some of the log is before the horizon");
        // Catching up takes longer on a busy machine, while the history
        // slides on: the times still readable for `MARGIN` are checked once
        // it is done.
        client.wait_until_readable(last, Duration::from_secs(60)).await.unwrap();
        let earliest = now_ms() - HISTORY.as_millis() as Time + MARGIN;
        let mut checked = Vec::new();
        for (t, views) in expected.into_iter().filter(|(t, _)| *t >= earliest) {
            client.wait_until_readable(t, Duration::from_secs(30)).await.unwrap();
            let mut all = true;
            for view in View::ALL.into_iter().filter(|v| *v != View::SourceProgress) {
                match client.peek(view, Selector::All, Some(t)).await {
                    Ok(got) => assert_eq!(got.rows, views[&view], "{label}: {} at {t}", view.def().name),
                    // A machine busy enough can take longer than `MARGIN`
                    // over the times before: this one left the history.
                    Err(PeekError::Compacted { .. }) if t < now_ms() - HISTORY.as_millis() as Time => {
                        all = false;
                        break;
                    }
                    Err(e) => panic!("{label}: reading {} at {t}: {e}", view.def().name),
                }
            }
            if all {
                checked.push(t);
            }
        }
        assert!(
            checked.len() >= 5 && checked[0] < horizon + 12_000,
            "{label}: too few times checked, or none with windows reaching before the horizon {horizon}: {checked:?}"
        );
        check_progress(&client, malformed, &label).await;
        match client.peek(View::VideoStats, Selector::All, Some(first)).await {
            Err(PeekError::Compacted { .. }) => {}
            other => panic!("{label}: a time before the horizon was read: {other:?}"),
        }
        dataflows.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_show_up_and_windows_retract_as_time_passes() {
    let (_dir, log, dataflows) = on_a_fresh_log(2).await;
    let client = dataflows.client();
    let workload = common::workload(23, 4);
    for phase in &workload.phases {
        common::append(&log, phase).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (facts, malformed, times) = common::stamped(&log, TICK_MS).await;
    check(&client, &facts, malformed, &times, &windows(), "live").await;
    // Long after the last event, no one is watching and nothing trends.
    let later = times[times.len() - 1] + 1_000;
    client
        .wait_until_readable(later, Duration::from_secs(30))
        .await
        .unwrap();
    for view in [View::ConcurrentViewers, View::Trending] {
        let rows = client.peek(view, Selector::All, Some(later)).await.unwrap().rows;
        assert!(
            rows.is_empty(),
            "{} should be empty once its windows passed: {rows:?}",
            view.def().name
        );
    }
    dataflows.shutdown();
}

/// Everything a subscription delivers until its progress passes `until`:
/// the updates, checked to arrive in time order and never behind a
/// progress marker already sent.
async fn follow(sub: &mut Subscription, until: Time, label: &str) -> Vec<Update> {
    let mut updates = Vec::new();
    let mut progress = sub.as_of;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: no progress past {progress} within 30 s"))
            .unwrap_or_else(|| panic!("{label}: the subscription ended"));
        match event {
            SubscribeEvent::Updates(batch) => {
                for u in &batch {
                    assert!(
                        u.time >= progress && updates.last().is_none_or(|l: &Update| l.time <= u.time),
                        "{label}: update at {} arrived after progress {progress}",
                        u.time
                    );
                    assert_ne!(u.diff, 0, "{label}: updates are consolidated");
                }
                updates.extend(batch);
            }
            SubscribeEvent::Progress(t) => {
                assert!(
                    t > progress || t == sub.as_of + 1,
                    "{label}: progress went from {progress} to {t}"
                );
                progress = t;
                if t > until {
                    return updates;
                }
            }
            SubscribeEvent::Error(e) => panic!("{label}: the subscription failed: {e}"),
        }
    }
}

/// The rows the updates add up to at `t`.
fn accumulate(updates: &[Update], t: Time) -> Vec<(Row, Row)> {
    let mut counts: BTreeMap<(Row, Row), isize> = BTreeMap::new();
    for u in updates.iter().filter(|u| u.time <= t) {
        *counts.entry((u.key.clone(), u.value.clone())).or_default() += u.diff;
    }
    let mut rows = Vec::new();
    for (row, n) in counts {
        assert!(n >= 0, "row {row:?} has multiplicity {n} at {t}");
        rows.extend(std::iter::repeat_n(row, n as usize));
    }
    rows
}

/// Subscribes to every view before any event, appends a random workload
/// in phases, and checks that each subscription's changes add up to the
/// reference at every time. A subscription to a few keys taken half-way
/// starts with those keys' rows, then follows their changes.
async fn subscriptions_follow_the_reference(log: &AnyLog, clients: &[PeekClient], seed: u64, label: &str) {
    let views: Vec<View> = View::ALL.into_iter().filter(|v| *v != View::SourceProgress).collect();
    let mut subs = Vec::new();
    for (i, view) in views.iter().enumerate() {
        // Spread the subscriptions over the processes.
        let client = &clients[i % clients.len()];
        subs.push(
            client
                .subscribe(*view, Selector::All, None, 1 << 20)
                .expect("subscribe"),
        );
    }
    let workload = common::workload(seed, 4);
    let half = workload.phases.len() / 2;
    let mut keyed = None;
    for (i, phase) in workload.phases.iter().enumerate() {
        common::append(log, phase).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if i + 1 == half {
            let (facts, _, times) = common::stamped(log, TICK_MS).await;
            let t = *times.last().expect("times");
            let client = clients.last().expect("a client");
            client
                .wait_until_readable(t, Duration::from_secs(30))
                .await
                .expect("readable");
            let stats = reference::views_at(&facts, t, &windows())
                .remove(&View::VideoStats)
                .unwrap();
            // Up to three keys: several of them on one worker.
            let keys: Vec<Row> = stats.iter().take(3).map(|(k, _)| k.clone()).collect();
            assert!(!keys.is_empty(), "a video was watched in the first half");
            let sub = client
                .subscribe(View::VideoStats, Selector::Keys(keys.clone()), Some(t), 1 << 20)
                .expect("subscribe to keys");
            keyed = Some((keys, sub));
        }
    }
    let (facts, _, times) = common::stamped(log, TICK_MS).await;
    let last = *times.last().expect("times");
    // Subscriptions that start in the past, AS OF the first phase: the
    // updates since come from the arrangements, the rest from the taps.
    let first = times
        .iter()
        .copied()
        .filter(|t| *t >= subs[0].as_of)
        .min()
        .expect("a time");
    for (i, view) in views.clone().into_iter().enumerate() {
        let client = &clients[(i + 1) % clients.len()];
        subs.push(
            client
                .subscribe(view, Selector::All, Some(first), 1 << 20)
                .expect("subscribe AS OF"),
        );
    }
    let views: Vec<View> = views.iter().chain(views.iter()).copied().collect();
    for (view, mut sub) in views.into_iter().zip(subs) {
        let name = view.def().name;
        let updates = follow(&mut sub, last, &format!("{label}: {name}")).await;
        for &t in times.iter().filter(|t| **t >= sub.as_of) {
            let expected = reference::views_at(&facts, t, &windows()).remove(&view).unwrap();
            assert_eq!(
                accumulate(&updates, t),
                expected,
                "{label}: the changes of {name} do not add up to the reference at {t}"
            );
        }
    }
    let (keys, mut sub) = keyed.expect("a key subscription");
    let updates = follow(&mut sub, last, &format!("{label}: keys")).await;
    assert!(
        updates.iter().all(|u| keys.contains(&u.key)),
        "{label}: only the keys' rows"
    );
    for &t in times.iter().filter(|t| **t >= sub.as_of) {
        let expected: Vec<_> = reference::views_at(&facts, t, &windows())
            .remove(&View::VideoStats)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| keys.contains(k))
            .collect();
        assert_eq!(accumulate(&updates, t), expected, "{label}: the keys at {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_the_reference_on_1_and_2_workers() {
    for (seed, workers) in [(31, 1), (32, 2)] {
        let (_dir, log, dataflows) = on_a_fresh_log(workers).await;
        let client = dataflows.client();
        client.wait_until_readable(1, Duration::from_secs(30)).await.unwrap();
        subscriptions_follow_the_reference(&log, std::slice::from_ref(&client), seed, &format!("{workers} workers"))
            .await;
        // Every subscription has ended with its handle.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client.metrics().subscriptions.load(Ordering::Relaxed) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "subscriptions outlive their handles"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        dataflows.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_is_dropped_and_the_rest_go_on() {
    let (_dir, log, dataflows) = on_a_fresh_log(2).await;
    let client = dataflows.client();
    client.wait_until_readable(1, Duration::from_secs(30)).await.unwrap();
    // Room for 5 updates, and nobody reading.
    let mut slow = client.subscribe(View::VideoStats, Selector::All, None, 5).unwrap();
    let mut fine = client
        .subscribe(View::VideoStats, Selector::All, None, 1 << 20)
        .unwrap();
    let workload = common::workload(41, 2);
    common::append_all(&log, &workload, Duration::from_millis(50)).await;
    let (facts, _, times) = common::stamped(&log, TICK_MS).await;
    let last = *times.last().unwrap();
    let updates = follow(&mut fine, last, "the reader that keeps up").await;
    assert_eq!(
        accumulate(&updates, last),
        reference::views_at(&facts, last, &windows())
            .remove(&View::VideoStats)
            .unwrap()
    );
    let mut ended = None;
    let read_to_the_end = async {
        while let Some(event) = slow.next().await {
            if let SubscribeEvent::Error(e) = event {
                ended = Some(e);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_to_the_end)
        .await
        .expect("the slow subscription ends");
    match ended {
        Some(PeekError::TooSlow { limit: 5, buffered }) => assert!(buffered > 5),
        other => panic!("the slow subscriber should be dropped as too slow, got {other:?}"),
    }
    assert_eq!(client.metrics().subscriptions_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(client.metrics().subscriptions.load(Ordering::Relaxed), 1);
    dataflows.shutdown();
}

/// Issue 29: a Kafka topic's default retention dropped records after a
/// week, and a restart then rebuilt different views without a word. A
/// start on a log whose records have expired refuses, naming the topic,
/// the partition and the first offset left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_start_refuses_a_log_whose_records_expired() {
    let (_dir, log, _) = written_log(21, 3, Duration::from_millis(10)).await;
    let topic = PlaybackEvent::TOPIC;
    let (partition, high) = {
        let mut highest = (0, 0);
        for p in 0..3 {
            let high = log.high_watermark(topic, p).await.expect("high watermark");
            highest = highest.max((high, p));
        }
        (highest.1, highest.0)
    };
    let earliest = log.expire_before(topic, partition, high).await.expect("expire");
    assert!(earliest > 0, "a whole segment expired");
    let refused = Dataflows::start(log.clone(), options(ClusterConfig::single(1))).await;
    let err = refused.err().expect("a start on an expired log is refused").to_string();
    for named in [
        topic.to_string(),
        format!("partition {partition}"),
        format!("offset {earliest}"),
    ] {
        assert!(err.contains(&named), "the error names {named}: {err}");
    }
}

/// A snapshot of the log up to a time in the middle of workload `seed`:
/// the log, the facts, the malformed count, the snapshot and the times to
/// check (its frontier and the workload's times after it). The snapshot is
/// made in two passes, and must be the one made in one.
async fn snapshotted(
    seed: u64,
    phases: usize,
) -> (
    tempfile::TempDir,
    AnyLog,
    Vec<(Time, Fact)>,
    usize,
    Arc<Snapshot>,
    Vec<Time>,
) {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 2 KiB, so what a snapshot covers spans whole segments.
    let log = AnyLog::Embedded(
        EmbeddedLog::open(
            dir.path(),
            EmbeddedOptions {
                fsync: FsyncPolicy::Never,
                segment_bytes: 2 * 1024,
                ..EmbeddedOptions::default()
            },
        )
        .unwrap(),
    );
    common::create_topics(&log, 3).await;
    common::append_all(&log, &common::workload(seed, phases), Duration::from_millis(120)).await;
    let records = common::read_back(&log).await;
    let (facts, malformed, times) = common::stamped(&log, TICK_MS).await;
    let mut stamps: Vec<Time> = facts.iter().map(|(t, _)| *t).collect();
    stamps.sort();
    stamps.dedup();
    // From the middle of the log on, the first time at which some sessions
    // have closed and others are still open (how the log's times fall
    // depends on how fast it was written).
    let fold = |frontier: Time| {
        let mut c = Compactor::new(&windows(), TICK_MS);
        c.advance(&records, frontier);
        c
    };
    let frontier = stamps[stamps.len() / 2..]
        .iter()
        .map(|t| t + 1)
        .find(|t| {
            let s = fold(*t).snapshot();
            !s.closed.totals.is_empty() && !s.playback.is_empty()
        })
        .unwrap_or(stamps[stamps.len() / 2] + 1);
    let early = stamps[stamps.len() / 4] + 1;
    let once = fold(frontier);
    let mut first = Compactor::new(&windows(), TICK_MS);
    first.advance(&records, early);
    let mut second = Compactor::resume(&first.snapshot(), &windows());
    second.advance(&records, frontier);
    let snapshot = once.snapshot();
    assert_eq!(second.snapshot(), snapshot, "seed {seed}: two passes fold as one");
    assert_eq!(snapshot.frontier, frontier);
    let mut check: Vec<Time> = times.into_iter().filter(|t| *t > frontier).collect();
    check.insert(0, frontier);
    (dir, log, facts, malformed, Arc::new(snapshot), check)
}

/// Starting from a snapshot reads the log only after it, on any number of
/// workers, and every view equals the reference from the snapshot's
/// frontier on; nothing before the frontier is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_a_snapshot_matches_the_reference_with_1_2_and_4_workers() {
    for seed in [3, 4, 5] {
        let (_dir, log, facts, malformed, snapshot, times) = snapshotted(seed, 5).await;
        // Sessions closed before the frontier and others still open at it,
        // and a trending start of a closed session still in its window.
        let closed = &snapshot.closed;
        assert!(
            !closed.totals.is_empty(),
            "seed {seed}: sessions closed before the snapshot"
        );
        assert!(
            !snapshot.playback.is_empty(),
            "seed {seed}: sessions open at the snapshot"
        );
        assert!(
            snapshot.partitions.iter().any(|m| m.offset > 0),
            "seed {seed}: the snapshot covers records"
        );
        let covered: u64 = snapshot.partitions.iter().map(|m| m.offset).sum();
        let total: u64 = common::read_back(&log).await.len() as u64;
        assert!(covered < total, "seed {seed}: records are left after the snapshot");
        for workers in [1, 2, 4] {
            let label = format!("seed {seed}, from a snapshot, {workers} workers");
            let mut options = options(ClusterConfig::single(workers));
            options.snapshot = Some(Arc::clone(&snapshot));
            let dataflows = Dataflows::start(log.clone(), options).await.expect("start");
            let client = dataflows.client();
            check(&client, &facts, malformed, &times, &windows(), &label).await;
            match client
                .peek(View::VideoStats, Selector::All, Some(snapshot.frontier - 1))
                .await
            {
                Err(PeekError::Compacted { .. }) => {}
                other => panic!("{label}: a time before the snapshot was read: {other:?}"),
            }
            dataflows.shutdown();
        }
    }
}

/// A snapshot whose records the log no longer has is fine; a log that
/// lost records the snapshot does not cover refuses to start, naming
/// where the snapshot leaves off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_a_snapshot_needs_only_the_records_after_it() {
    let (_dir, log, facts, malformed, snapshot, times) = snapshotted(6, 5).await;
    let topic = PlaybackEvent::TOPIC;
    // Expire what the snapshot covers, as far as whole segments allow.
    for m in snapshot.partitions.iter().filter(|m| m.topic == topic) {
        log.expire_before(topic, m.partition, m.offset).await.expect("expire");
    }
    let mut options = options(ClusterConfig::single(2));
    options.snapshot = Some(Arc::clone(&snapshot));
    let dataflows = Dataflows::start(log.clone(), options.clone()).await.expect("start");
    check(
        &dataflows.client(),
        &facts,
        malformed,
        &times,
        &windows(),
        "expired before the snapshot",
    )
    .await;
    dataflows.shutdown();
    // Without the snapshot, or with one that covers less, it refuses.
    let (partition, earliest) = {
        let mut found = None;
        for m in snapshot.partitions.iter().filter(|m| m.topic == topic) {
            let earliest = log.low_watermark(topic, m.partition).await.expect("low watermark");
            // The start checks partitions in order and names the first.
            if earliest > 0 && found.is_none() {
                found = Some((m.partition, earliest));
            }
        }
        found.expect("a segment covered by the snapshot expired")
    };
    let mut short = (*snapshot).clone();
    for m in short
        .partitions
        .iter_mut()
        .filter(|m| m.topic == topic && m.partition == partition)
    {
        m.offset = earliest - 1;
    }
    for (snapshot, needed) in [(None, 0), (Some(Arc::new(short)), earliest - 1)] {
        let mut options = options.clone();
        options.snapshot = snapshot;
        let err = Dataflows::start(log.clone(), options)
            .await
            .err()
            .expect("refused")
            .to_string();
        for named in [
            topic.to_string(),
            format!("partition {partition}"),
            format!("offset {earliest}"),
            format!("offset {needed} on"),
        ] {
            assert!(err.contains(&named), "the error names {named}: {err}");
        }
    }
}
