//! A reduce for totally ordered time.
//!
//! Differential's `reduce` works for any partially ordered time: for every
//! key it changes, it keeps the output's history in a second arrangement
//! and replays the times that could be "interesting" to find where the
//! output changes. Log time is a plain `u64`, so none of that is needed —
//! the same reason differential has `count_total` and `distinct_total`
//! beside `count` and `distinct`. [`ReduceTotal::reduce_total`] is `reduce`
//! in that style:
//!
//! - updates are exchanged by key and wait until the frontier has passed
//!   their time, so a time is applied only once all of it is in;
//! - each key's current values are kept in the operator, ordered, with
//!   their multiplicities, and changed in place by each update. Nothing
//!   reads a key back from an arrangement: for a key with thousands of
//!   values (a top-k bucket), reading them again from a trace's batches on
//!   every change cost more than everything else in the dataflow put
//!   together, and an input arrangement nobody else reads only cost merges;
//! - a key's updates are applied time by time, in order, calling the logic
//!   after each time and sending only what changed; the previous output is
//!   the logic applied to the values before the batch, so there is no
//!   output arrangement either.
//!
//! The logic sees a key's values in order, with their multiplicities and
//! without zeros, as `reduce` gives them, and is called only when the key
//! has values.

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
        let by_key = Exchange::new(|((k, _), _, _): &((K, V), Time, isize)| k.hashed());
        self.inner
            .unary_frontier(by_key, name, move |_, _| {
                let mut state: HashMap<K, Values<V>> = HashMap::new();
                // Updates whose time the frontier has not passed yet.
                let mut pending: Vec<((K, V), Time, isize)> = Vec::new();
                // Updates whose time it has, being applied.
                let mut ready: Vec<((K, V), Time, isize)> = Vec::new();
                let mut caps = CapabilitySet::new();
                let mut before: Vec<(O, isize)> = Vec::new();
                let mut after: Vec<(O, isize)> = Vec::new();
                let mut delta: Vec<(O, isize)> = Vec::new();
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
                        let mut updates = ready.drain(..).peekable();
                        while let Some(((key, value), mut time, diff)) = updates.next() {
                            let values = state.entry(key.clone()).or_default();
                            before.clear();
                            if !values.is_empty() {
                                logic(&key, values, &mut before);
                                consolidate(&mut before);
                            }
                            add(values, value, diff);
                            loop {
                                // The rest of the key's updates at `time`.
                                while let Some(((k, _), t, _)) = updates.peek() {
                                    if *k != key || *t != time {
                                        break;
                                    }
                                    let ((_, value), _, diff) = updates.next().expect("peeked");
                                    add(values, value, diff);
                                }
                                after.clear();
                                if !values.is_empty() {
                                    logic(&key, values, &mut after);
                                    consolidate(&mut after);
                                }
                                if after != before {
                                    delta.clear();
                                    delta.extend(before.iter().map(|(o, c)| (o.clone(), -c)));
                                    delta.extend(after.iter().cloned());
                                    consolidate(&mut delta);
                                    for (o, c) in delta.drain(..) {
                                        session.give(((key.clone(), o), time, c));
                                    }
                                    std::mem::swap(&mut before, &mut after);
                                }
                                // The key's next time, if it has one.
                                match updates.peek() {
                                    Some(((k, _), t, _)) if *k == key => time = *t,
                                    _ => break,
                                }
                                let ((_, value), _, diff) = updates.next().expect("peeked");
                                add(values, value, diff);
                            }
                            if values.is_empty() {
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
