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
//! by video to join it cost as much as the fold itself.
//!
//! The logic of `reduce_total` sees a key's values in order, with their
//! multiplicities and without zeros, as `reduce` gives them, and is called
//! only when the key has values.

use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};

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
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use differential_dataflow::consolidation::consolidate_updates;
    /// use timely::dataflow::operators::capture::Extract;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use reelflow_dataflows::operators::{Accumulator, ReduceTotal};
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
    /// // Session 1 of video 7, beside the video's duration.
    /// let captured = timely::example(|scope| {
    ///     let positions = vec![((1u32, (7u8, 10u32)), 0u64, 1isize), ((1, (7, 4)), 1, 1), ((1, (7, 30)), 2, 1)];
    ///     let durations = vec![((7u8, 60u32), 0u64, 1isize)];
    ///     let positions = positions.to_stream(scope).as_collection();
    ///     let durations = durations.to_stream(scope).as_collection();
    ///     let besides = positions.accumulate_beside::<Furthest, _, _, _>("Furthest", durations, |t| t.0);
    ///     besides.inner.capture()
    /// });
    /// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// consolidate_updates(&mut changes);
    /// assert_eq!(
    ///     changes,
    ///     vec![
    ///         ((1, ((7, 10), Some(60))), 0, 1),
    ///         ((1, ((7, 10), Some(60))), 2, -1),
    ///         ((1, ((7, 30), Some(60))), 2, 1),
    ///     ]
    /// );
    /// ```
    fn accumulate_beside<A, J, L, G>(
        self,
        name: &str,
        side: Coll<'s, (J, L)>,
        side_key: G,
    ) -> Besides<'s, K, A::Total, L>
    where
        A: Accumulator<V>,
        J: ExchangeData + Hash,
        L: ExchangeData,
        G: Fn(&A::Total) -> J + 'static;
}

/// Each key's total beside its side's values (`None` without any).
pub type Besides<'s, K, T, L> = Coll<'s, (K, (T, Option<L>))>;

/// Output rows of one key's total beside its side, with multiplicities.
type Rows<T, L> = Vec<((T, Option<L>), isize)>;

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

    fn accumulate_beside<A, J, L, G>(
        self,
        name: &str,
        side: Coll<'s, (J, L)>,
        side_key: G,
    ) -> Besides<'s, K, A::Total, L>
    where
        A: Accumulator<V>,
        J: ExchangeData + Hash,
        L: ExchangeData,
        G: Fn(&A::Total) -> J + 'static,
    {
        let label = name.to_string();
        let by_key = Exchange::new(|((k, _), _, _): &((K, V), Time, isize)| k.hashed());
        self.inner
            .binary_frontier(side.inner.broadcast(), by_key, Pipeline, name, move |_, _| {
                let mut totals: HashMap<K, Beside<A, J>> = HashMap::default();
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
                    let first = ready.iter().map(|u| u.1).chain(ready_side.iter().map(|u| u.1)).min();
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
                            .min()
                        {
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
                                // Unchanged, it is re-sent below if its side changed.
                                if changed {
                                    push_rows(&mut rows, before.as_ref(), was, -1);
                                    let side_key = st.acc.total().map(&side_key);
                                    push_rows(
                                        &mut rows,
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
                                    push_rows(&mut rows, total, Some(before), -1);
                                    push_rows(&mut rows, total, sides.get(j), 1);
                                    consolidate(&mut rows);
                                    for (row, diff) in rows.drain(..) {
                                        session.give(((key.clone(), row), time, diff));
                                    }
                                }
                            }
                        }
                    }
                    let earliest = pending
                        .iter()
                        .map(|u| u.1)
                        .chain(pending_side.iter().map(|u| u.1))
                        .min();
                    release(&mut caps, earliest);
                }
            })
            .as_collection()
    }
}

/// `accumulate_beside`'s state of a key: its accumulator, and the side
/// key it was indexed under.
struct Beside<A, J> {
    acc: A,
    side_key: Option<J>,
}

impl<A: Default, J> Default for Beside<A, J> {
    fn default() -> Self {
        Self {
            acc: A::default(),
            side_key: None,
        }
    }
}

/// Adds `diff` times the output rows of `total` beside `side`: one per
/// side value, with its multiplicity, or one with `None`.
fn push_rows<S: Clone, L: Clone>(rows: &mut Rows<S, L>, total: Option<&S>, side: Option<&Values<L>>, diff: isize) {
    let Some(s) = total else { return };
    match side.filter(|values| !values.is_empty()) {
        None => rows.push(((s.clone(), None), diff)),
        Some(values) => rows.extend(values.iter().map(|(l, c)| ((s.clone(), Some(l.clone())), c * diff))),
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

    #[test]
    fn accumulate_beside_is_the_total_left_joined_with_the_side_at_every_time() {
        type Beside = (u8, (Vec<u32>, Option<u8>));
        // The side key of a total: its first value, so a late smaller value
        // can move a key to another side key.
        let side_key = |s: &Vec<u32>| (s[0] % 3) as u8;
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
                    .accumulate_beside::<Distinct, _, _, _>("AccumulateBeside", side, side_key)
            });
            for time in 0..=last {
                let side_now = at(&side, time);
                let mut expected: Vec<(Beside, isize)> = Vec::new();
                for key in 0..4 {
                    // Distinct, in order, as `at` consolidates them.
                    let values: Vec<u32> = at(&input, time)
                        .into_iter()
                        .filter(|((k, _), _)| *k == key)
                        .map(|((_, v), _)| v)
                        .collect();
                    if values.is_empty() {
                        continue;
                    }
                    let j = side_key(&values);
                    let matches: Vec<(u8, isize)> = side_now
                        .iter()
                        .filter(|((sj, _), _)| *sj == j)
                        .map(|((_, l), c)| (*l, *c))
                        .collect();
                    if matches.is_empty() {
                        expected.push(((key, (values, None)), 1));
                    } else {
                        for (l, c) in matches {
                            expected.push(((key, (values.clone(), Some(l))), c));
                        }
                    }
                }
                consolidate(&mut expected);
                assert_eq!(at(&output, time), expected, "seed {seed}, time {time}");
            }
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
                .accumulate_beside::<Distinct, _, _, _>("Refuses", side, |_| 0u8)
        });
    }
}
