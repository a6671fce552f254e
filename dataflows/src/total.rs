//! Reduce and fold for totally ordered time.
//!
//! Differential's `reduce` works for any partially ordered time: for every
//! key it changes, it keeps the output's history in a second arrangement
//! and replays the times that could be "interesting" to find where the
//! output changes. Log time is a plain `u64`, so none of that is needed —
//! the same reason differential has `count_total` and `distinct_total`
//! beside `count` and `distinct`. The operators here work in that style
//! ([`by_key_in_time_order`]):
//!
//! - updates are exchanged by key and wait until the frontier has passed
//!   their time, so a time is applied only once all of it is in;
//! - each key's state is kept in the operator and changed in place, time by
//!   time, in order, sending only what changed. Nothing reads a key back
//!   from an arrangement: for a key with thousands of values (a top-k
//!   bucket), reading them again from a trace's batches on every change
//!   cost more than everything else in the dataflow put together, and an
//!   input arrangement nobody else reads only cost merges.
//!
//! [`ReduceTotal::reduce_total`] is `reduce`: a key's state is its values,
//! in order, with their multiplicities. [`ReduceTotal::fold_total`] is a
//! reduce whose output is a fold over the distinct values in order: when a
//! time only adds values after the last one (a session's next events, the
//! common case), the fold goes on from where it was instead of starting
//! over, so a session's heartbeat costs one step, not two steps per event
//! so far — for a two-hour film with a heartbeat every 10 s, one step
//! instead of up to 1,440.
//!
//! The logic of `reduce_total` sees a key's values in order, with their
//! multiplicities and without zeros, as `reduce` gives them, and is called
//! only when the key has values.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

use crate::views::{Coll, Time};

/// A key's current values, in order, with their (non-zero) multiplicities.
pub type Values<V> = BTreeMap<V, isize>;

/// `reduce` for collections over log time.
pub trait ReduceTotal<'s, K, V> {
    /// For each key, `logic` maps its values (in order, with
    /// multiplicities) to output values (with multiplicities); the result
    /// holds `(key, output)` as it stands at every time.
    fn reduce_total<O, L>(self, name: &str, logic: L) -> Coll<'s, (K, O)>
    where
        O: ExchangeData,
        L: FnMut(&K, &Values<V>, &mut Vec<(O, isize)>) + 'static;

    /// For each key with values, `(key, s)` once, where `s` is what `step`
    /// makes of its distinct values in order, starting from `None` (and
    /// nothing while `s` is `None`).
    fn fold_total<S, F>(self, name: &str, step: F) -> Coll<'s, (K, S)>
    where
        S: ExchangeData,
        F: FnMut(&mut Option<S>, &V) + 'static;
}

impl<'s, K, V> ReduceTotal<'s, K, V> for Coll<'s, (K, V)>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    fn reduce_total<O, L>(self, name: &str, mut logic: L) -> Coll<'s, (K, O)>
    where
        O: ExchangeData,
        L: FnMut(&K, &Values<V>, &mut Vec<(O, isize)>) + 'static,
    {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut delta = Vec::new();
        // The key last changed, with its output since. A key's times come
        // one after another, so its output after one is its output before
        // the next; other keys' outputs are recomputed rather than kept,
        // which would cost more memory than the call saves.
        let mut last: Option<K> = None;
        by_key_in_time_order(self, name, move |key, values: &mut Values<V>, updates, out| {
            if last.as_ref() != Some(key) {
                last = Some(key.clone());
                before.clear();
                if !values.is_empty() {
                    logic(key, values, &mut before);
                    consolidate(&mut before);
                }
            }
            for (value, diff) in updates.drain(..) {
                add(values, value, diff);
            }
            after.clear();
            if !values.is_empty() {
                logic(key, values, &mut after);
                consolidate(&mut after);
            }
            if after != before {
                delta.extend(before.iter().map(|(o, c)| (o.clone(), -c)));
                delta.extend(after.iter().cloned());
                consolidate(&mut delta);
                out.extend(delta.drain(..).map(|(o, c)| ((key.clone(), o), c)));
            }
            std::mem::swap(&mut before, &mut after);
            values.is_empty()
        })
    }

    fn fold_total<S, F>(self, name: &str, mut step: F) -> Coll<'s, (K, S)>
    where
        S: ExchangeData,
        F: FnMut(&mut Option<S>, &V) + 'static,
    {
        by_key_in_time_order(self, name, move |key, st: &mut Folded<V, S>, updates, out| {
            let before = st.folded.clone();
            // `updates` is consolidated, so in order: it only appends when
            // its first value comes after the last one held.
            let appends = updates.iter().all(|(_, d)| *d > 0)
                && match (st.values.last_key_value(), updates.first()) {
                    (Some((last, _)), Some((first, _))) => first > last,
                    _ => true,
                };
            if appends {
                for (value, diff) in updates.drain(..) {
                    step(&mut st.folded, &value);
                    st.values.insert(value, diff);
                }
            } else {
                for (value, diff) in updates.drain(..) {
                    add(&mut st.values, value, diff);
                }
                st.folded = None;
                for value in st.values.keys() {
                    step(&mut st.folded, value);
                }
            }
            if st.folded != before {
                out.extend(before.map(|s| ((key.clone(), s), -1)));
                out.extend(st.folded.iter().map(|s| ((key.clone(), s.clone()), 1)));
            }
            st.values.is_empty()
        })
    }
}

/// `fold_total`'s state of a key.
struct Folded<V, S> {
    values: Values<V>,
    /// The fold of `values`.
    folded: Option<S>,
}

impl<V, S> Default for Folded<V, S> {
    fn default() -> Self {
        Self {
            values: Values::new(),
            folded: None,
        }
    }
}

/// The operator behind the `_total` operators. Exchanges `(key, value)`
/// updates by key and, once the frontier has passed their time, hands
/// `apply` each key's updates at one time — consolidated, so in value order
/// and without zeros — time by time, in order, with the key's state (from
/// `Default` for a key not seen before). `apply` drains the updates, adds
/// the output's changes at that time to its last argument, and says whether
/// the state is now empty, in which case it is dropped.
fn by_key_in_time_order<'s, K, V, S, O, F>(coll: Coll<'s, (K, V)>, name: &str, mut apply: F) -> Coll<'s, O>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
    S: Default + 'static,
    O: ExchangeData,
    F: FnMut(&K, &mut S, &mut Vec<(V, isize)>, &mut Vec<(O, isize)>) -> bool + 'static,
{
    let by_key = Exchange::new(|((k, _), _, _): &((K, V), Time, isize)| k.hashed());
    coll.inner
        .unary_frontier(by_key, name, move |_, _| {
            let mut state: HashMap<K, S> = HashMap::new();
            // Updates whose time the frontier has not passed yet.
            let mut pending: Vec<((K, V), Time, isize)> = Vec::new();
            // Updates whose time it has, being applied.
            let mut ready: Vec<((K, V), Time, isize)> = Vec::new();
            let mut caps = CapabilitySet::new();
            let mut updates: Vec<(V, isize)> = Vec::new();
            let mut changes: Vec<(O, isize)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for cap in cap.retain_stamp(0).iter() {
                        caps.insert(cap.clone());
                    }
                    pending.append(data);
                });
                let frontier = frontier.frontier();
                if pending.iter().any(|(_, t, _)| !frontier.less_equal(t)) {
                    // Moved, not copied into fresh vectors: under load these
                    // are large, and fresh pages cost more than the work.
                    ready.extend(pending.extract_if(.., |(_, t, _)| !frontier.less_equal(t)));
                    ready.sort_unstable_by(|((a, _), ta, _), ((b, _), tb, _)| (a, ta).cmp(&(b, tb)));
                    let first = ready.iter().map(|(_, t, _)| *t).min().expect("something is ready");
                    let cap = caps.delayed(&first);
                    let mut session = output.session(&cap);
                    let mut ready = ready.drain(..).peekable();
                    while let Some(((key, value), time, diff)) = ready.next() {
                        updates.push((value, diff));
                        // The rest of the key's updates at `time`.
                        while let Some(((k, _), t, _)) = ready.peek() {
                            if *k != key || *t != time {
                                break;
                            }
                            let ((_, value), _, diff) = ready.next().expect("peeked");
                            updates.push((value, diff));
                        }
                        consolidate(&mut updates);
                        if updates.is_empty() {
                            continue;
                        }
                        let st = state.entry(key.clone()).or_default();
                        let empty = apply(&key, st, &mut updates, &mut changes);
                        updates.clear();
                        for (o, c) in changes.drain(..) {
                            session.give((o, time, c));
                        }
                        if empty {
                            state.remove(&key);
                        }
                    }
                }
                // Later output is at the earliest pending time or after it:
                // nothing earlier is held, so downstream moves on.
                match pending.iter().map(|(_, t, _)| *t).min() {
                    None => caps = CapabilitySet::new(),
                    Some(t) => caps.downgrade([t]),
                }
            }
        })
        .as_collection()
}

/// Adds `diff` copies of `value` to `values`, dropping it at zero.
fn add<V: Ord>(values: &mut Values<V>, value: V, diff: isize) {
    match values.entry(value) {
        Entry::Occupied(mut e) => {
            *e.get_mut() += diff;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Entry::Vacant(e) => {
            if diff != 0 {
                e.insert(diff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use differential_dataflow::AsCollection;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};

    use super::*;

    type Update<D> = (D, Time, isize);

    /// Seeded updates of `(key, value)` in time order, times repeating, the
    /// values of a key mostly rising (a session's next events) but not
    /// always, and retractions only of values present.
    fn updates(seed: u64) -> Vec<Update<(u8, u32)>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut present: Vec<(u8, u32)> = Vec::new();
        let mut next = [0u32; 4];
        let mut out = Vec::new();
        let mut time = 0;
        for _ in 0..300 {
            time += rng.random_range(0..3);
            let key = rng.random_range(0..4u8);
            if !present.is_empty() && rng.random_bool(0.15) {
                let kv = present.swap_remove(rng.random_range(0..present.len()));
                out.push((kv, time, -1));
            } else {
                let value = if rng.random_bool(0.8) {
                    next[key as usize] += rng.random_range(0..3);
                    next[key as usize]
                } else {
                    rng.random_range(0..next[key as usize] + 1)
                };
                present.push((key, value));
                out.push(((key, value), time, 1));
            }
        }
        out
    }

    /// `updates` accumulated to `time`, consolidated.
    fn at<D: Ord + Clone>(updates: &[Update<D>], time: Time) -> Vec<(D, isize)> {
        let mut v: Vec<(D, isize)> = updates
            .iter()
            .filter(|(_, t, _)| *t <= time)
            .map(|(d, _, r)| (d.clone(), *r))
            .collect();
        consolidate(&mut v);
        v
    }

    fn run<D: ExchangeData>(
        build: impl for<'s> FnOnce(timely::dataflow::Scope<'s, Time>) -> Coll<'s, D> + Send + Sync + 'static,
    ) -> Vec<Update<D>> {
        let captured = timely::example(move |scope| build(scope).inner.capture());
        captured.extract().into_iter().flat_map(|(_, d)| d).collect()
    }

    #[test]
    fn fold_total_is_the_fold_of_the_values_at_every_time() {
        for seed in 0..20 {
            let input = updates(seed);
            let last = input.last().map_or(0, |u| u.1);
            let fed = input.clone();
            let output = run(move |scope| {
                fed.to_stream(scope)
                    .as_collection()
                    .fold_total("Fold", |s: &mut Option<Vec<u32>>, v: &u32| {
                        s.get_or_insert_default().push(*v)
                    })
            });
            for time in 0..=last {
                let mut expected: Vec<((u8, Vec<u32>), isize)> = Vec::new();
                for key in 0..4 {
                    let values: Vec<u32> = at(&input, time)
                        .into_iter()
                        .filter(|((k, _), _)| *k == key)
                        .map(|((_, v), _)| v)
                        .collect();
                    if !values.is_empty() {
                        expected.push(((key, values), 1));
                    }
                }
                assert_eq!(at(&output, time), expected, "seed {seed}, time {time}");
            }
        }
    }
}
