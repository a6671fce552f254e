//! Windows over log time: what a collection held over the last `len`.
//!
//! A windowed view counts each thing once while it was seen within the
//! window: a session with an event in the last minute, a session start in
//! the last hour. It retracts at `t + window`, so `concurrent_viewers` and
//! `trending` change as time passes even when no event arrives.
//!
//! [`distinct_in_window`] keeps, for each thing present, only when it
//! leaves the window. Another sighting pushes that time on; the first
//! makes it present (`+1`) and the last, once the window has passed it,
//! absent (`-1`). So a heartbeat costs one look-up, and the operator sends
//! only comings and goings. Written as differential operators — every
//! update, retracted again at `t + window`, then `distinct_total` — each
//! heartbeat was two updates in an arrangement whose trace was read back
//! for every key, and the retractions waited a whole window in a queue.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Duration;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

use crate::operators::support::{HashMap, hold, release};
use crate::time::{Coll, Time};

/// The distinct `d` of `c` seen in the last `len`: an update `(d, logged)`
/// at time `t` keeps `d` present from `t` until `logged + len` (or `t`, if
/// later: a catching-up source may stamp an update after its exact log
/// time, [`crate::source`]), and `d` is in the result, once, while any of
/// its updates keeps it there. The input only grows (facts from the log):
/// a retraction is a bug, and panics.
///
/// ```
/// use differential_dataflow::AsCollection;
/// use differential_dataflow::consolidation::consolidate_updates;
/// use timely::dataflow::operators::capture::Extract;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use std::time::Duration;
///
/// use reelflow_dataflows::operators::distinct_in_window;
///
/// // Session 1 seen at 0 ms and again at 500 ms, in a one-second window.
/// let captured = timely::example(|scope| {
///     let seen = vec![((1u32, 0u64), 0u64, 1isize), ((1, 500), 500, 1)];
///     let seen = seen.to_stream(scope).as_collection();
///     distinct_in_window(seen, Duration::from_secs(1), "Active").inner.capture()
/// });
/// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// consolidate_updates(&mut changes);
/// // Present once, from its first sighting until a second after its last.
/// assert_eq!(changes, vec![(1, 0, 1), (1, 1500, -1)]);
/// ```
pub fn distinct_in_window<'s, D>(c: Coll<'s, (D, Time)>, len: Duration, name: &str) -> Coll<'s, D>
where
    D: ExchangeData + Hash,
{
    let len = Time::try_from(len.as_millis()).unwrap_or(Time::MAX);
    let label = name.to_string();
    let by_key = Exchange::new(|((d, _), _, _): &((D, Time), Time, isize)| d.hashed());
    c.inner
        .unary_frontier(by_key, name, move |_, _| {
            // When each present key leaves the window.
            let mut until: HashMap<D, Time> = HashMap::default();
            // The keys to look at when the frontier passes a time: each
            // present key once, at or before its `until`.
            let mut due: BTreeMap<Time, Vec<D>> = BTreeMap::new();
            // Updates whose time the frontier has not passed yet, and
            // those it has, being applied.
            let mut pending: Vec<((D, Time), Time, isize)> = Vec::new();
            let mut ready: Vec<((D, Time), Time, isize)> = Vec::new();
            let mut caps = CapabilitySet::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| hold(&cap, data, &mut caps, &mut pending));
                let frontier = frontier.frontier();
                let passed = |t: &Time| !frontier.less_equal(t);
                ready.extend(pending.extract_if(.., |(_, t, _)| passed(t)));
                ready.sort_unstable_by_key(|(_, t, _)| *t);
                let mut ready = ready.drain(..).peekable();
                // Time by time: at one time, the sightings first, so that
                // a key seen again just as it would leave stays.
                loop {
                    let next_seen = ready.peek().map(|u| u.1);
                    let next_due = due.first_key_value().map(|(t, _)| *t).filter(|t| passed(t));
                    let Some(time) = next_seen.into_iter().chain(next_due).min() else {
                        break;
                    };
                    let cap = caps.delayed(&time);
                    let mut session = output.session(&cap);
                    while let Some(((d, logged), _, diff)) = ready.next_if(|u| u.1 == time) {
                        assert!(diff > 0, "{label}: a retraction of what only grows");
                        let end = logged.saturating_add(len).max(time);
                        match until.get_mut(&d) {
                            Some(u) => *u = (*u).max(end),
                            None if end > time => {
                                due.entry(end).or_default().push(d.clone());
                                until.insert(d.clone(), end);
                                session.give((d, time, 1));
                            }
                            // Gone as soon as it came.
                            None => {}
                        }
                    }
                    if next_due == Some(time) {
                        for d in due.pop_first().map(|(_, keys)| keys).unwrap_or_default() {
                            match until.get(&d).copied() {
                                Some(end) if end > time => due.entry(end).or_default().push(d),
                                _ => {
                                    until.remove(&d);
                                    session.give((d, time, -1));
                                }
                            }
                        }
                    }
                }
                let earliest = pending.iter().map(|u| u.1).chain(due.keys().next().copied()).min();
                release(&mut caps, earliest);
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use differential_dataflow::AsCollection;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use timely::dataflow::operators::ToStream;

    use super::*;
    use crate::operators::support::harness::{Update, at, run};

    /// Seeded sightings `((key, logged), t, 1)` in time order, mostly
    /// stamped at their log time, some later (a source catching up), some
    /// twice.
    fn sightings(seed: u64) -> Vec<Update<(u8, Time)>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut time: Time = 0;
        (0..200)
            .map(|_| {
                time += rng.random_range(0..4);
                let logged = if rng.random_bool(0.8) {
                    time
                } else {
                    time.saturating_sub(rng.random_range(0..30))
                };
                (
                    (rng.random_range(0..6u8), logged),
                    time,
                    rng.random_range(1..3i64) as isize,
                )
            })
            .collect()
    }

    #[test]
    fn distinct_in_window_is_what_was_seen_in_the_window_at_every_time() {
        for seed in 0..30 {
            let input = sightings(seed);
            let len = StdRng::seed_from_u64(seed).random_range(1..25);
            let fed = input.clone();
            let output = run(move |scope| {
                distinct_in_window(
                    fed.to_stream(scope).as_collection(),
                    Duration::from_millis(len),
                    "Window",
                )
            });
            let last = input.iter().map(|u| u.1).max().unwrap_or(0) + len + 30;
            for time in 0..=last {
                let mut expected: Vec<(u8, isize)> = input
                    .iter()
                    .filter(|((_, logged), t, _)| *t <= time && time < (logged + len).max(*t))
                    .map(|((d, _), _, _)| (*d, 1))
                    .collect();
                expected.sort();
                expected.dedup();
                assert_eq!(at(&output, time), expected, "seed {seed}, window {len}, time {time}");
            }
            assert!(at(&output, last).is_empty(), "seed {seed}: everything leaves");
        }
    }

    #[test]
    #[should_panic(expected = "a retraction of what only grows")]
    fn distinct_in_window_refuses_a_retraction() {
        run(|scope| {
            let input: Vec<Update<(u8, Time)>> = vec![((0, 0), 0, 1), ((0, 0), 1, -1)];
            distinct_in_window(
                input.to_stream(scope).as_collection(),
                Duration::from_millis(5),
                "Refuses",
            )
        });
    }
}
