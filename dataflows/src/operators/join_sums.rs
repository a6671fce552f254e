//! `count_total` joined with each key's values, in one operator.
//!
//! A video's sums change with every heartbeat, and its views show them
//! beside everything slow-moving about the video (its title, genre,
//! duration). `count_total` and then a `join` would keep the sums' history
//! twice over; this operator keeps each key's current sum and values only.

use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::difference::{Abelian, Monoid, Multiply};
use differential_dataflow::{AsCollection, ExchangeData};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;

use crate::operators::in_time_order::{Values, add, by_key_in_time_order};
use crate::time::Coll;

/// `count_total` of `sums` — each key's differences added up — joined
/// with `values` in the same operator: for each key whose sum is not zero,
/// `join(key, sum, value)` for each of its values, with the value's
/// multiplicity. Each key keeps its sum and its current values, nothing
/// else: `count_total` and a `join` keep the history of the sums twice
/// over (the count's input arrangement and the join's), and every
/// heartbeat passed through both.
///
/// ```
/// use differential_dataflow::AsCollection;
/// use differential_dataflow::consolidation::consolidate_updates;
/// use timely::dataflow::operators::capture::Extract;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use reelflow_dataflows::operators::join_sums;
///
/// // Video 7's watch time (the sum) beside its title's id (the value).
/// let captured = timely::example(|scope| {
///     let watched = vec![(7u8, 0u64, 30isize), (7, 1, 15), (7, 2, -45)];
///     let titles = vec![((7u8, 100u32), 0u64, 1isize)];
///     let watched = watched.to_stream(scope).as_collection();
///     let titles = titles.to_stream(scope).as_collection();
///     join_sums(watched, titles, "Figures", |video, sum: &isize, title| (*video, *sum, *title)).inner.capture()
/// });
/// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// consolidate_updates(&mut changes);
/// // The sum back at zero leaves nothing.
/// assert_eq!(changes, vec![((7, 30, 100), 0, 1), ((7, 30, 100), 1, -1), ((7, 45, 100), 1, 1), ((7, 45, 100), 2, -1)]);
/// ```
pub fn join_sums<'s, K, R, P, O, F>(
    sums: Coll<'s, K, R>,
    values: Coll<'s, (K, P)>,
    name: &str,
    mut join: F,
) -> Coll<'s, O>
where
    K: ExchangeData + Hash,
    R: ExchangeData + Ord + Abelian + Multiply<isize, Output = R>,
    P: ExchangeData,
    O: ExchangeData,
    F: FnMut(&K, &R, &P) -> O + 'static,
{
    let sums = sums.inner.map(|(k, t, r)| ((k, Part::Sum(r)), t, 1)).as_collection();
    let parts = sums.concat(values.map(|(k, p)| (k, Part::Value(p))));
    by_key_in_time_order(parts, name, move |key, st: &mut Summed<R, P>, updates, out| {
        st.push_joined(key, &mut join, -1, out);
        for (part, diff) in updates.drain(..) {
            match part {
                Part::Sum(r) => st.sum.plus_equals(&r.multiply(&diff)),
                Part::Value(p) => add(&mut st.values, p, diff),
            }
        }
        st.push_joined(key, &mut join, 1, out);
        consolidate(out);
        st.sum.is_zero() && st.values.is_empty()
    })
}

/// An update of [`join_sums`]' input: a difference of a key's sum, or one
/// of its values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Part<R, P> {
    Sum(R),
    Value(P),
}

/// [`join_sums`]' state of a key.
struct Summed<R, P> {
    sum: R,
    values: Values<P>,
}

impl<R: Monoid, P> Default for Summed<R, P> {
    fn default() -> Self {
        Self {
            sum: R::zero(),
            values: Values::new(),
        }
    }
}

impl<R: Monoid, P> Summed<R, P> {
    /// Adds `diff` times its joined rows to `out`.
    fn push_joined<K, O>(
        &self,
        key: &K,
        join: &mut impl FnMut(&K, &R, &P) -> O,
        diff: isize,
        out: &mut Vec<(O, isize)>,
    ) {
        if !self.sum.is_zero() {
            out.extend(self.values.iter().map(|(p, c)| (join(key, &self.sum, p), c * diff)));
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

    #[test]
    fn join_sums_is_the_count_joined_with_the_values_at_every_time() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5a5a);
            // Differences of each key's sum, some cancelling to zero.
            let sums: Vec<Update<u8>> = (0..200)
                .map(|i| (rng.random_range(0..4u8), i / 3, [-2, -1, 1, 2][rng.random_range(0..4)]))
                .collect();
            let values = side_updates(seed);
            let last = sums
                .iter()
                .map(|u| u.1)
                .chain(values.iter().map(|u| u.1))
                .max()
                .unwrap_or(0);
            let (fed, fed_values) = (sums.clone(), values.clone());
            let output = run(move |scope| {
                let sums = fed.to_stream(scope).as_collection();
                let values = fed_values.to_stream(scope).as_collection();
                join_sums(sums, values, "JoinSums", |k: &u8, sum: &isize, v: &u8| (*k, *sum, *v))
            });
            for time in 0..=last {
                let mut expected: Vec<((u8, isize, u8), isize)> = Vec::new();
                for key in 0..4u8 {
                    let sum: isize = at(&sums, time).iter().filter(|(k, _)| *k == key).map(|(_, c)| c).sum();
                    if sum == 0 {
                        continue;
                    }
                    for ((k, v), c) in at(&values, time) {
                        if k == key {
                            expected.push(((key, sum, v), c));
                        }
                    }
                }
                assert_eq!(at(&output, time), expected, "seed {seed}, time {time}");
            }
        }
    }
}
