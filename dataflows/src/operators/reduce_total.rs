//! `reduce` and accumulate for totally ordered time.
//!
//! Log time is totally ordered, so a key's state can be kept in the
//! operator and changed in place, time by time
//! ([`by_key_in_time_order`](crate::operators::in_time_order)), instead of
//! differential's `reduce` keeping and replaying its output's history.
//!
//! [`ReduceTotal::reduce_total`] is `reduce`: a key's state is its values,
//! in order, with their multiplicities.
//! [`ReduceTotal::accumulate_beside`] is for a key whose values only come
//! (a session's events) and add up the same in any order (an
//! [`Accumulator`]): a key's state is what they amount to so far, not the
//! values, so a late value costs one step like the next one, and a
//! two-hour film with a heartbeat every 10 s keeps one summary (and what
//! tells a duplicate), not 720 events. Its totals are left-joined, in the same operator, with a small
//! collection broadcast to every worker (a session beside its video's
//! duration): a total's change looks its side up, and a change of the side
//! re-sends the totals indexed under it. Arranging every session's change
//! by video to join it cost as much as the fold itself. A key that has had
//! no values for a while closes ([`Phase`]): its state is dropped, so the
//! operator keeps what is live, not all of history.
//!
//! The logic of `reduce_total` sees a key's values in order, with their
//! multiplicities and without zeros, as `reduce` gives them, and is called
//! only when the key has values.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Broadcast;

use crate::operators::in_time_order::{Values, add, by_key_in_time_order, gather};
use crate::operators::support::{HashMap, HashSet, hold, release};
use crate::time::{Coll, Time};

/// `reduce` for collections over log time.
pub trait ReduceTotal<'s, K, V> {
    /// For each key, `logic` maps its values (in order, with
    /// multiplicities) to output values (with multiplicities); the result
    /// holds `(key, output)` as it stands at every time.
    ///
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use differential_dataflow::consolidation::consolidate_updates;
    /// use timely::dataflow::operators::capture::Extract;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use reelflow_dataflows::operators::ReduceTotal;
    ///
    /// // Each key's largest value, as it stands at every time.
    /// let captured = timely::example(|scope| {
    ///     let values = vec![((1u32, 5u32), 0u64, 1isize), ((1, 9), 1, 1), ((1, 9), 2, -1)];
    ///     let values = values.to_stream(scope).as_collection();
    ///     let largest = values.reduce_total("Largest", |_key, values, out| {
    ///         out.push((*values.keys().last().expect("a key has values"), 1));
    ///     });
    ///     largest.inner.capture()
    /// });
    /// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// consolidate_updates(&mut changes);
    /// assert_eq!(
    ///     changes,
    ///     vec![((1, 5), 0, 1), ((1, 5), 1, -1), ((1, 5), 2, 1), ((1, 9), 1, 1), ((1, 9), 2, -1)]
    /// );
    /// ```
    fn reduce_total<O, L>(self, name: &str, logic: L) -> Coll<'s, (K, O)>
    where
        O: ExchangeData,
        L: FnMut(&K, &Values<V>, &mut Vec<(O, isize)>) + 'static;

    /// For each key with values, what its values amount to
    /// ([`Accumulator`]), beside the values `side` holds for the total's
    /// `side_key` at the same time: a left join of the totals with `side`,
    /// `None` where it holds nothing. `side` is broadcast to every worker,
    /// so it should be small; it is joined inside the operator, so a
    /// total's change moves through no other operator. The totals never
    /// leave the worker, so they may be shared (an `Arc`). The input only
    /// grows (facts from the log): a retraction is a bug, and panics.
    ///
    /// A key closes `linger(total)` after the last time it had values
    /// (never, for `None`): its total is re-sent as [`Phase::Closed`],
    /// beside the side as it stood before that time, and its state is
    /// dropped. So state follows the keys still open, not every key ever
    /// seen; readers that keep something per key keep only what is open,
    /// and fold what closed into smaller keys. A value for the key at or
    /// after that time starts a new total.
    ///
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use differential_dataflow::consolidation::consolidate_updates;
    /// use timely::dataflow::operators::capture::Extract;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use reelflow_dataflows::operators::{Accumulator, Phase, ReduceTotal};
    ///
    /// /// A session's video and the furthest position seen; a position
    /// /// short of it changes nothing.
    /// #[derive(Default)]
    /// struct Furthest(Option<(u8, u32)>);
    ///
    /// impl Accumulator<(u8, u32)> for Furthest {
    ///     type Total = (u8, u32);
    ///     fn add(&mut self, value: &(u8, u32)) -> bool {
    ///         if self.0.is_some_and(|(_, at)| at >= value.1) {
    ///             return false;
    ///         }
    ///         self.0 = Some(*value);
    ///         true
    ///     }
    ///     fn total(&self) -> Option<&(u8, u32)> {
    ///         self.0.as_ref()
    ///     }
    /// }
    ///
    /// // Session 1 of video 7, beside the video's duration, closing 10
    /// // after its last position.
    /// let captured = timely::example(|scope| {
    ///     let positions = vec![((1u32, (7u8, 10u32)), 0u64, 1isize), ((1, (7, 4)), 1, 1), ((1, (7, 30)), 2, 1)];
    ///     let durations = vec![((7u8, 60u32), 0u64, 1isize)];
    ///     let positions = positions.to_stream(scope).as_collection();
    ///     let durations = durations.to_stream(scope).as_collection();
    ///     let besides =
    ///         positions.accumulate_beside::<Furthest, _, _, _, _>("Furthest", durations, |t| t.0, |_| Some(10));
    ///     besides.inner.capture()
    /// });
    /// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// consolidate_updates(&mut changes);
    /// assert_eq!(
    ///     changes,
    ///     vec![
    ///         ((1, (Phase::Open, (7, 10), Some(60))), 0, 1),
    ///         ((1, (Phase::Open, (7, 10), Some(60))), 2, -1),
    ///         ((1, (Phase::Open, (7, 30), Some(60))), 2, 1),
    ///         ((1, (Phase::Open, (7, 30), Some(60))), 12, -1),
    ///         ((1, (Phase::Closed, (7, 30), Some(60))), 12, 1),
    ///     ]
    /// );
    /// ```
    fn accumulate_beside<A, J, L, G, F>(
        self,
        name: &str,
        side: Coll<'s, (J, L)>,
        side_key: G,
        linger: F,
    ) -> Besides<'s, K, A::Total, L>
    where
        A: Accumulator<V>,
        J: ExchangeData + Hash,
        L: ExchangeData,
        G: Fn(&A::Total) -> J + 'static,
        F: Fn(&A::Total) -> Option<Time> + 'static;
}

/// Whether a key's total may still change ([`ReduceTotal::accumulate_beside`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Values may still come.
    Open,
    /// Final: the key lingered without values and its state is gone. A
    /// value for it after this starts a new total.
    Closed,
}

/// Each key's total, open or closed, beside its side's values (`None`
/// without any).
pub type Besides<'s, K, T, L> = Coll<'s, (K, (Phase, T, Option<L>))>;

/// Output rows of one key's total beside its side, with multiplicities.
type Rows<T, L> = Vec<((Phase, T, Option<L>), isize)>;

/// A key's state in [`ReduceTotal::accumulate_beside`]: what the values
/// added so far amount to, the same whatever order they were added in.
pub trait Accumulator<V>: Default + 'static {
    /// What the values amount to.
    type Total: Clone + Ord + 'static;
    /// Adds `value`; false when that changed nothing (a duplicate).
    fn add(&mut self, value: &V) -> bool;
    /// The total of the values added; `None` before the first.
    fn total(&self) -> Option<&Self::Total>;
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

    fn accumulate_beside<A, J, L, G, F>(
        self,
        name: &str,
        side: Coll<'s, (J, L)>,
        side_key: G,
        linger: F,
    ) -> Besides<'s, K, A::Total, L>
    where
        A: Accumulator<V>,
        J: ExchangeData + Hash,
        L: ExchangeData,
        G: Fn(&A::Total) -> J + 'static,
        F: Fn(&A::Total) -> Option<Time> + 'static,
    {
        let label = name.to_string();
        let by_key = Exchange::new(|((k, _), _, _): &((K, V), Time, isize)| k.hashed());
        self.inner
            .binary_frontier(side.inner.broadcast(), by_key, Pipeline, name, move |_, _| {
                let mut totals: HashMap<K, Beside<A, J>> = HashMap::default();
                // The keys due to close, by when. A key's entry is stale
                // when its deadline has moved on since.
                let mut deadlines: BTreeMap<Time, Vec<K>> = BTreeMap::new();
                // The side as of the last time applied, on every worker.
                let mut sides: HashMap<J, Values<L>> = HashMap::default();
                // Which keys' totals have each side key.
                let mut keys_of: HashMap<J, Vec<K>> = HashMap::default();
                let mut pending: Vec<((K, V), Time, isize)> = Vec::new();
                let mut pending_side: Vec<((J, L), Time, isize)> = Vec::new();
                let mut ready: Vec<((K, V), Time, isize)> = Vec::new();
                let mut ready_side: Vec<((J, L), Time, isize)> = Vec::new();
                let mut caps = CapabilitySet::new();
                let mut updates: Vec<(V, isize)> = Vec::new();
                let mut side_updates: Vec<(L, isize)> = Vec::new();
                // The side keys changed at the time being applied, with
                // what they held before it, and the keys applied at it.
                let mut side_before: HashMap<J, Values<L>> = HashMap::default();
                let mut applied: HashSet<K> = HashSet::default();
                let mut rows: Rows<A::Total, L> = Vec::new();
                move |(input, frontier), (side_input, side_frontier), output| {
                    input.for_each(|cap, data| hold(&cap, data, &mut caps, &mut pending));
                    side_input.for_each(|cap, data| hold(&cap, data, &mut caps, &mut pending_side));
                    let (frontier, side_frontier) = (frontier.frontier(), side_frontier.frontier());
                    let passed = |t: &Time| !frontier.less_equal(t) && !side_frontier.less_equal(t);
                    ready.extend(pending.extract_if(.., |(_, t, _)| passed(t)));
                    ready_side.extend(pending_side.extract_if(.., |(_, t, _)| passed(t)));
                    let due = |deadlines: &BTreeMap<Time, Vec<K>>| deadlines.keys().next().copied().filter(passed);
                    let first = ready
                        .iter()
                        .map(|u| u.1)
                        .chain(ready_side.iter().map(|u| u.1))
                        .chain(due(&deadlines))
                        .min();
                    if let Some(first) = first {
                        // Time by time: the side at a time is what every
                        // key applied at that time sees.
                        ready.sort_unstable_by(|((a, _), ta, _), ((b, _), tb, _)| (ta, a).cmp(&(tb, b)));
                        ready_side.sort_unstable_by(|((a, _), ta, _), ((b, _), tb, _)| (ta, a).cmp(&(tb, b)));
                        let cap = caps.delayed(&first);
                        let mut session = output.session(&cap);
                        let mut main = ready.drain(..).peekable();
                        let mut side = ready_side.drain(..).peekable();
                        while let Some(time) = main
                            .peek()
                            .map(|u| u.1)
                            .into_iter()
                            .chain(side.peek().map(|u| u.1))
                            .chain(due(&deadlines))
                            .min()
                        {
                            // Keys whose time is up close first, beside the
                            // side as it stood before this time; a value at
                            // this time starts a new total.
                            if due(&deadlines) == Some(time) {
                                let (_, keys) = deadlines.pop_first().expect("a deadline is due");
                                for key in keys {
                                    if totals.get(&key).is_none_or(|st| st.deadline != Some(time)) {
                                        continue;
                                    }
                                    let st = totals.remove(&key).expect("looked up");
                                    let side_values = st.side_key.as_ref().and_then(|j| sides.get(j));
                                    push_rows(&mut rows, Phase::Open, st.acc.total(), side_values, -1);
                                    push_rows(&mut rows, Phase::Closed, st.acc.total(), side_values, 1);
                                    if let Some(j) = &st.side_key {
                                        unindex(&mut keys_of, j, &key);
                                    }
                                    consolidate(&mut rows);
                                    for (row, diff) in rows.drain(..) {
                                        session.give(((key.clone(), row), time, diff));
                                    }
                                }
                            }
                            side_before.clear();
                            applied.clear();
                            while let Some(((j, _), _, _)) = side.peek().filter(|u| u.1 == time) {
                                let j = j.clone();
                                gather(&mut side, &j, time, &mut side_updates);
                                if side_updates.is_empty() {
                                    continue;
                                }
                                let values = sides.entry(j.clone()).or_default();
                                side_before.insert(j.clone(), values.clone());
                                for (l, d) in side_updates.drain(..) {
                                    add(values, l, d);
                                }
                                if values.is_empty() {
                                    sides.remove(&j);
                                }
                            }
                            while let Some(((key, _), _, _)) = main.peek().filter(|u| u.1 == time) {
                                let key = key.clone();
                                gather(&mut main, &key, time, &mut updates);
                                if updates.is_empty() {
                                    continue;
                                }
                                let st = totals.entry(key.clone()).or_default();
                                let was = st
                                    .side_key
                                    .as_ref()
                                    .and_then(|j| side_before.get(j).or_else(|| sides.get(j)));
                                let before = st.acc.total().cloned();
                                let mut changed = false;
                                for (value, diff) in updates.drain(..) {
                                    assert!(diff > 0, "{label}: a retraction of what only grows");
                                    changed |= st.acc.add(&value);
                                }
                                // Even a duplicate keeps the key from closing.
                                let deadline = st.acc.total().and_then(&linger).map(|l| time.saturating_add(l));
                                if deadline != st.deadline {
                                    st.deadline = deadline;
                                    if let Some(d) = deadline {
                                        deadlines.entry(d).or_default().push(key.clone());
                                    }
                                }
                                // Unchanged, it is re-sent below if its side changed.
                                if changed {
                                    push_rows(&mut rows, Phase::Open, before.as_ref(), was, -1);
                                    let side_key = st.acc.total().map(&side_key);
                                    push_rows(
                                        &mut rows,
                                        Phase::Open,
                                        st.acc.total(),
                                        side_key.as_ref().and_then(|j| sides.get(j)),
                                        1,
                                    );
                                    if side_key != st.side_key {
                                        if let Some(old) = st.side_key.take() {
                                            unindex(&mut keys_of, &old, &key);
                                        }
                                        if let Some(j) = &side_key {
                                            keys_of.entry(j.clone()).or_default().push(key.clone());
                                        }
                                        st.side_key = side_key;
                                    }
                                    consolidate(&mut rows);
                                    for (row, diff) in rows.drain(..) {
                                        session.give(((key.clone(), row), time, diff));
                                    }
                                    if !side_before.is_empty() {
                                        applied.insert(key);
                                    }
                                }
                            }
                            // The keys not applied at this time whose side changed.
                            for (j, before) in &side_before {
                                for key in keys_of.get(j).into_iter().flatten().filter(|k| !applied.contains(*k)) {
                                    let total = totals.get(key).and_then(|st| st.acc.total());
                                    push_rows(&mut rows, Phase::Open, total, Some(before), -1);
                                    push_rows(&mut rows, Phase::Open, total, sides.get(j), 1);
                                    consolidate(&mut rows);
                                    for (row, diff) in rows.drain(..) {
                                        session.give(((key.clone(), row), time, diff));
                                    }
                                }
                            }
                        }
                    }
                    // A deadline is held too, so a key closes at its time
                    // even when nothing arrives.
                    let earliest = pending
                        .iter()
                        .map(|u| u.1)
                        .chain(pending_side.iter().map(|u| u.1))
                        .chain(deadlines.keys().next().copied())
                        .min();
                    release(&mut caps, earliest);
                }
            })
            .as_collection()
    }
}

/// `accumulate_beside`'s state of a key: its accumulator, the side key it
/// was indexed under, and when it closes.
struct Beside<A, J> {
    acc: A,
    side_key: Option<J>,
    deadline: Option<Time>,
}

impl<A: Default, J> Default for Beside<A, J> {
    fn default() -> Self {
        Self {
            acc: A::default(),
            side_key: None,
            deadline: None,
        }
    }
}

/// Adds `diff` times the output rows of `total` in `phase` beside `side`:
/// one per side value, with its multiplicity, or one with `None`.
fn push_rows<S: Clone, L: Clone>(
    rows: &mut Rows<S, L>,
    phase: Phase,
    total: Option<&S>,
    side: Option<&Values<L>>,
    diff: isize,
) {
    let Some(s) = total else { return };
    match side.filter(|values| !values.is_empty()) {
        None => rows.push(((phase, s.clone(), None), diff)),
        Some(values) => rows.extend(
            values
                .iter()
                .map(|(l, c)| ((phase, s.clone(), Some(l.clone())), c * diff)),
        ),
    }
}

/// Removes `key` from the keys indexed under `side_key`.
fn unindex<J: Eq + Hash, K: PartialEq>(keys_of: &mut HashMap<J, Vec<K>>, side_key: &J, key: &K) {
    if let Some(keys) = keys_of.get_mut(side_key) {
        if let Some(i) = keys.iter().position(|k| k == key) {
            keys.swap_remove(i);
        }
        if keys.is_empty() {
            keys_of.remove(side_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use differential_dataflow::AsCollection;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use timely::dataflow::operators::ToStream;

    use super::*;
    use crate::operators::support::harness::{Update, at, run, side_updates};

    /// Seeded insertions of `(key, value)` in time order, times repeating,
    /// the values of a key mostly rising (a session's next events) but not
    /// always (late ones), some again (duplicates), some twice at once.
    fn updates(seed: u64) -> Vec<Update<(u8, u32)>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next = [0u32; 4];
        let mut out = Vec::new();
        let mut time = 0;
        for _ in 0..300 {
            time += rng.random_range(0..3);
            let key = rng.random_range(0..4u8);
            let value = if rng.random_bool(0.8) {
                next[key as usize] += rng.random_range(0..3);
                next[key as usize]
            } else {
                rng.random_range(0..next[key as usize] + 1)
            };
            out.push(((key, value), time, rng.random_range(1..3i64) as isize));
        }
        out
    }

    /// The distinct values added, in order.
    #[derive(Default)]
    struct Distinct(Option<Vec<u32>>);

    impl Accumulator<u32> for Distinct {
        type Total = Vec<u32>;

        fn add(&mut self, value: &u32) -> bool {
            let values = self.0.get_or_insert_default();
            match values.binary_search(value) {
                Ok(_) => false,
                Err(at) => {
                    values.insert(at, *value);
                    true
                }
            }
        }

        fn total(&self) -> Option<&Vec<u32>> {
            self.0.as_ref()
        }
    }

    /// A key's totals up to `time`, as `accumulate_beside` should make
    /// them: its values split where it closed, `linger` after the last
    /// time it had values, each closed total with the time it closed.
    fn incarnations(
        input: &[Update<(u8, u32)>],
        key: u8,
        time: Time,
        linger: impl Fn(&Vec<u32>) -> Option<Time>,
    ) -> Vec<(Vec<u32>, Option<Time>)> {
        let mut out: Vec<(Vec<u32>, Option<Time>)> = Vec::new();
        let mut open: Option<(Vec<u32>, Time)> = None;
        for ((_, v), t, _) in input.iter().filter(|((k, _), t, _)| *k == key && *t <= time) {
            if let Some((values, last)) = &open {
                let closes = linger(values).map(|l| last + l);
                if closes.is_some_and(|c| c <= *t) {
                    out.push((values.clone(), closes));
                    open = None;
                }
            }
            let (values, last) = open.get_or_insert_with(|| (Vec::new(), *t));
            if let Err(at) = values.binary_search(v) {
                values.insert(at, *v);
            }
            *last = *t;
        }
        if let Some((values, last)) = open {
            let closes = linger(&values).map(|l| last + l).filter(|c| *c <= time);
            out.push((values, closes));
        }
        out
    }

    #[test]
    fn accumulate_beside_is_the_total_left_joined_with_the_side_at_every_time() {
        type Beside = (u8, (Phase, Vec<u32>, Option<u8>));
        // The side key of a total: its first value, so a late smaller value
        // can move a key to another side key.
        let side_key = |s: &Vec<u32>| (s[0] % 3) as u8;
        // Some totals never close; the others after a while that depends
        // on them, so a key closes, and a later value opens it again.
        let linger = |s: &Vec<u32>| (!s.len().is_multiple_of(4)).then_some(3 + (s[0] % 5) as Time);
        for seed in 0..20 {
            let input = updates(seed);
            let side = side_updates(seed);
            let last = input
                .iter()
                .map(|u| u.1)
                .chain(side.iter().map(|u| u.1))
                .max()
                .unwrap_or(0);
            let (fed, fed_side) = (input.clone(), side.clone());
            let output = run(move |scope| {
                let side = fed_side.to_stream(scope).as_collection();
                fed.to_stream(scope)
                    .as_collection()
                    .accumulate_beside::<Distinct, _, _, _, _>("AccumulateBeside", side, side_key, linger)
            });
            let mut closings = 0;
            for time in 0..=last + 10 {
                let mut expected: Vec<(Beside, isize)> = Vec::new();
                for key in 0..4 {
                    for (values, closed) in incarnations(&input, key, time, linger) {
                        // A closed total is beside the side before it closed.
                        let (phase, side_then) = match closed {
                            Some(c) => (Phase::Closed, if c == 0 { Vec::new() } else { at(&side, c - 1) }),
                            None => (Phase::Open, at(&side, time)),
                        };
                        let j = side_key(&values);
                        let matches: Vec<(u8, isize)> = side_then
                            .iter()
                            .filter(|((sj, _), _)| *sj == j)
                            .map(|((_, l), c)| (*l, *c))
                            .collect();
                        if matches.is_empty() {
                            expected.push(((key, (phase, values, None)), 1));
                        } else {
                            for (l, c) in matches {
                                expected.push(((key, (phase, values.clone(), Some(l))), c));
                            }
                        }
                    }
                }
                consolidate(&mut expected);
                closings = closings.max(expected.iter().filter(|((_, (p, ..)), _)| *p == Phase::Closed).count());
                assert_eq!(at(&output, time), expected, "seed {seed}, time {time}");
            }
            assert!(closings > 0, "seed {seed}: some key closed");
        }
    }

    #[test]
    #[should_panic(expected = "a retraction of what only grows")]
    fn accumulate_beside_refuses_a_retraction() {
        run(|scope| {
            let side = Vec::<((u8, u8), Time, isize)>::new().to_stream(scope).as_collection();
            vec![((0u8, 1u32), 0, 1), ((0, 1), 1, -1)]
                .to_stream(scope)
                .as_collection()
                .accumulate_beside::<Distinct, _, _, _, _>("Refuses", side, |_| 0u8, |_| None)
        });
    }
}
