//! A reduce that forgets what has closed, keeping only what it amounted
//! to.
//!
//! A reader of totals that close ([`Phase`]) and keeps something per
//! total — a viewer's latest session of a video, a video's latest view —
//! would keep every total ever seen if it were a `reduce`: a closed total
//! is never retracted. [`fold_closed`] keeps a key's open values as
//! `reduce` does (they may still be retracted), and folds each closed value
//! into an [`Accumulator`] as it arrives, so a key's state is its open
//! values and one fold, however many values have closed under it.

use std::hash::Hash;

use differential_dataflow::ExchangeData;
use differential_dataflow::consolidation::consolidate;

use crate::operators::in_time_order::{Values, add, by_key_in_time_order};
use crate::operators::{Accumulator, Phase};
use crate::time::Coll;

/// For each key, `logic` maps its open values (in order, with
/// multiplicities) and the fold `A` of its closed values (`None` before
/// the first) to output values; the result holds `(key, output)` as it
/// stands at every time. A closed value is final: its retraction is a bug,
/// and panics.
///
/// ```
/// use differential_dataflow::AsCollection;
/// use differential_dataflow::consolidation::consolidate_updates;
/// use timely::dataflow::operators::capture::Extract;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use reelflow_dataflows::operators::{Latest, Phase, fold_closed};
///
/// // Key 1's latest value: 9 while open, retracted for 5, then 9 closes.
/// let captured = timely::example(|scope| {
///     let values = vec![
///         ((1u8, (Phase::Open, 9u32)), 0u64, 1isize),
///         ((1, (Phase::Open, 9)), 1, -1),
///         ((1, (Phase::Open, 5)), 1, 1),
///         ((1, (Phase::Open, 5)), 2, -1),
///         ((1, (Phase::Closed, 5)), 2, 1),
///     ];
///     let values = values.to_stream(scope).as_collection();
///     fold_closed::<_, _, Latest<u32>, _, _>(values, "Latest", |_key, open, closed, out| {
///         let open = open.keys().last().copied();
///         out.push((open.max(closed.copied()).expect("a key has values"), 1));
///     })
///     .inner
///     .capture()
/// });
/// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// consolidate_updates(&mut changes);
/// assert_eq!(changes, vec![((1, 5), 1, 1), ((1, 9), 0, 1), ((1, 9), 1, -1)]);
/// ```
pub fn fold_closed<'s, K, V, A, O, L>(c: Coll<'s, (K, (Phase, V))>, name: &str, mut logic: L) -> Coll<'s, (K, O)>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
    A: Accumulator<V>,
    O: ExchangeData,
    L: FnMut(&K, &Values<V>, Option<&A::Total>, &mut Vec<(O, isize)>) + 'static,
{
    let label = name.to_string();
    let mut before = Vec::new();
    let mut after = Vec::new();
    by_key_in_time_order(c, name, move |key, st: &mut Lived<V, A>, updates, out| {
        let mut apply = |st: &Lived<V, A>, to: &mut Vec<(O, isize)>| {
            to.clear();
            if !st.is_empty() {
                logic(key, &st.open, st.closed.total(), to);
                consolidate(to);
            }
        };
        apply(st, &mut before);
        for ((phase, value), diff) in updates.drain(..) {
            match phase {
                Phase::Open => add(&mut st.open, value, diff),
                Phase::Closed => {
                    assert!(diff > 0, "{label}: a retraction of what has closed");
                    for _ in 0..diff {
                        st.closed.add(&value);
                    }
                }
            }
        }
        apply(st, &mut after);
        if after != before {
            out.extend(before.drain(..).map(|(o, c)| ((key.clone(), o), -c)));
            out.extend(after.drain(..).map(|(o, c)| ((key.clone(), o), c)));
            consolidate(out);
        }
        st.is_empty()
    })
}

/// A key's state in [`fold_closed`].
struct Lived<V, A> {
    open: Values<V>,
    closed: A,
}

impl<V, A: Default> Default for Lived<V, A> {
    fn default() -> Self {
        Self {
            open: Values::new(),
            closed: A::default(),
        }
    }
}

impl<V, A: Accumulator<V>> Lived<V, A> {
    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.total().is_none()
    }
}

/// The largest value added: a fold of closed values for [`fold_closed`].
pub struct Latest<T>(Option<T>);

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Ord + Clone + 'static> Accumulator<T> for Latest<T> {
    type Total = T;

    fn add(&mut self, value: &T) -> bool {
        let later = self.0.as_ref().is_none_or(|m| value > m);
        if later {
            self.0 = Some(value.clone());
        }
        later
    }

    fn total(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use differential_dataflow::AsCollection;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use timely::dataflow::operators::ToStream;

    use super::*;
    use crate::operators::support::harness::{Update, at, run};
    use crate::time::Time;

    /// Seeded totals of a few keys, as a closing reader sees them: each
    /// open value replaced now and then, and closed at last (retracted as
    /// open, inserted as closed), new ones opening all along.
    fn lives(seed: u64) -> Vec<Update<(u8, (Phase, u32))>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut open: Vec<(u8, u32)> = Vec::new();
        let mut out = Vec::new();
        for time in 0..200 {
            match rng.random_range(0..3) {
                0 => {
                    let kv = (rng.random_range(0..3u8), rng.random_range(0..1000u32));
                    open.push(kv);
                    out.push(((kv.0, (Phase::Open, kv.1)), time, 1));
                }
                1 if !open.is_empty() => {
                    let i = rng.random_range(0..open.len());
                    let (k, v) = open[i];
                    let new = rng.random_range(0..1000u32);
                    open[i].1 = new;
                    out.push(((k, (Phase::Open, v)), time, -1));
                    out.push(((k, (Phase::Open, new)), time, 1));
                }
                _ if !open.is_empty() => {
                    let (k, v) = open.swap_remove(rng.random_range(0..open.len()));
                    out.push(((k, (Phase::Open, v)), time, -1));
                    out.push(((k, (Phase::Closed, v)), time, 1));
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn fold_closed_is_the_reduce_of_all_values_at_every_time() {
        for seed in 0..20 {
            let input = lives(seed);
            let fed = input.clone();
            // The largest value, open or closed, and how many there are.
            let output = run(move |scope| {
                fold_closed::<_, _, Latest<u32>, _, _>(
                    fed.to_stream(scope).as_collection(),
                    "Latest",
                    |_k, open, closed, out| {
                        let largest = open.keys().last().copied().max(closed.copied());
                        out.push((largest.expect("a key has values"), 1));
                    },
                )
            });
            for time in 0..200 as Time {
                let mut expected: Vec<((u8, u32), isize)> = Vec::new();
                for key in 0..3u8 {
                    let largest = at(&input, time)
                        .into_iter()
                        .filter(|((k, _), _)| *k == key)
                        .map(|((_, (_, v)), _)| v)
                        .max();
                    expected.extend(largest.map(|v| ((key, v), 1)));
                }
                assert_eq!(at(&output, time), expected, "seed {seed}, time {time}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "a retraction of what has closed")]
    fn fold_closed_refuses_to_retract_what_closed() {
        run(|scope| {
            let values = vec![((0u8, (Phase::Closed, 1u32)), 0, 1), ((0, (Phase::Closed, 1)), 1, -1)];
            fold_closed::<_, _, Latest<u32>, _, _>(
                values.to_stream(scope).as_collection(),
                "Refuses",
                |_, _, _, out| out.push(((), 1)),
            )
        });
    }
}
