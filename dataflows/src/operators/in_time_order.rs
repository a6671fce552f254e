//! The operator behind the `_total` operators: a key's updates applied
//! to its state in the operator, time by time, in order.
//!
//! Differential's `reduce` works for any partially ordered time: for every
//! key it changes, it keeps the output's history in a second arrangement
//! and replays the times that could be "interesting" to find where the
//! output changes. Log time is a plain `u64`, so none of that is needed —
//! the same reason differential has `count_total` and `distinct_total`
//! beside `count` and `distinct`. [`by_key_in_time_order`] works in that
//! style:
//!
//! - updates are exchanged by key and wait until the frontier has passed
//!   their time, so a time is applied only once all of it is in;
//! - each key's state is kept in the operator and changed in place, time by
//!   time, in order, sending only what changed. Nothing reads a key back
//!   from an arrangement: for a key with thousands of values (a top-k
//!   bucket), reading them again from a trace's batches on every change
//!   cost more than everything else in the dataflow put together, and an
//!   input arrangement nobody else reads only cost merges.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::hash::Hash;
use std::iter::Peekable;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;

use crate::operators::support::{HashMap, hold, release};
use crate::time::{Coll, Time};

/// A key's current values, in order, with their (non-zero) multiplicities.
pub type Values<V> = BTreeMap<V, isize>;

/// The operator behind the `_total` operators. Exchanges `(key, value)`
/// updates by key and, once the frontier has passed their time, hands
/// `apply` each key's updates at one time — consolidated, so in value order
/// and without zeros — time by time, in order, with the key's state (from
/// `Default` for a key not seen before). `apply` drains the updates, adds
/// the output's changes at that time to its last argument, and says whether
/// the state is now empty, in which case it is dropped.
pub(crate) fn by_key_in_time_order<'s, K, V, S, O, F>(coll: Coll<'s, (K, V)>, name: &str, mut apply: F) -> Coll<'s, O>
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
            let mut state: HashMap<K, S> = HashMap::default();
            // Updates whose time the frontier has not passed yet.
            let mut pending: Vec<((K, V), Time, isize)> = Vec::new();
            // Updates whose time it has, being applied.
            let mut ready: Vec<((K, V), Time, isize)> = Vec::new();
            let mut caps = CapabilitySet::new();
            let mut updates: Vec<(V, isize)> = Vec::new();
            let mut changes: Vec<(O, isize)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| hold(&cap, data, &mut caps, &mut pending));
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
                    while let Some(((key, _), time, _)) = ready.peek() {
                        let (key, time) = (key.clone(), *time);
                        gather(&mut ready, &key, time, &mut updates);
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
                release(&mut caps, pending.iter().map(|(_, t, _)| *t).min());
            }
        })
        .as_collection()
}

/// Moves the updates of `key` at `time` at the front of `ready` (sorted so
/// that a key's updates at a time are together) into `updates`,
/// consolidated.
pub(crate) fn gather<K: PartialEq, V: Ord>(
    ready: &mut Peekable<impl Iterator<Item = ((K, V), Time, isize)>>,
    key: &K,
    time: Time,
    updates: &mut Vec<(V, isize)>,
) {
    while let Some(((_, v), _, d)) = ready.next_if(|((k, _), t, _)| *t == time && k == key) {
        updates.push((v, d));
    }
    consolidate(updates);
}

/// Adds `diff` copies of `value` to `values`, dropping it at zero.
pub(crate) fn add<V: Ord>(values: &mut Values<V>, value: V, diff: isize) {
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
