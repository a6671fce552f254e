//! What a reader takes of a total's changes.
//!
//! A total kept per key (a session's summary) changes by a retraction of
//! what it was beside an insertion of what it is, at one time, one after
//! the other ([`crate::operators::ReduceTotal::accumulate_beside`] sends them
//! so). A reader often looks at a part of it that the change left alone
//! (a heartbeat does not change a session's viewer or start), or adds up
//! a part (a video's sums). Projecting every update and consolidating the
//! batch sorted it for each reader. Here each pair is projected side by
//! side: a part left alone sends nothing, and sums are added up per key
//! in a map, so a batch sends one difference per video. An update
//! without its pair (a batch ends between them, or a total's side holds
//! several values) is projected as it is: the same collection, only less
//! consolidated.

use std::hash::Hash;

use differential_dataflow::difference::{Abelian, Monoid, Multiply};
use differential_dataflow::{AsCollection, Data};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;

use crate::operators::support::HashMap;
use crate::time::{Coll, Time};

/// Hands `each` the updates of `data` two at a time where two are one
/// key's change at one time (the same key and time, opposite
/// multiplicities), the others one at a time.
fn for_each_change<K: PartialEq, V>(
    data: &mut Vec<((K, V), Time, isize)>,
    mut each: impl FnMut(&K, Time, (&V, isize), Option<(&V, isize)>),
) {
    let mut updates = data.drain(..).peekable();
    while let Some(((k, v), t, r)) = updates.next() {
        let other = updates.next_if(|((k2, _), t2, r2)| *k2 == k && *t2 == t && *r2 == -r);
        each(&k, t, (&v, r), other.as_ref().map(|((_, v2), _, r2)| (v2, *r2)));
    }
}

/// `c` projected by `project` (`None` drops an update), with a change
/// whose two sides project the same dropped.
///
/// ```
/// use differential_dataflow::AsCollection;
/// use differential_dataflow::consolidation::consolidate_updates;
/// use timely::dataflow::operators::capture::Extract;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use reelflow_dataflows::operators::project_changes;
///
/// // Session 1's summary (its video, its watch time) moves on at time 1;
/// // its video, the part taken, does not.
/// let captured = timely::example(|scope| {
///     let summaries = vec![((1u32, (7u8, 10u32)), 0u64, 1isize), ((1, (7, 10)), 1, -1), ((1, (7, 20)), 1, 1)];
///     let summaries = summaries.to_stream(scope).as_collection();
///     project_changes(summaries, "Video", |_session, (video, _)| Some(*video)).inner.capture()
/// });
/// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// consolidate_updates(&mut changes);
/// assert_eq!(changes, vec![(7, 0, 1)]);
/// ```
pub fn project_changes<'s, K, V, P>(
    c: Coll<'s, (K, V)>,
    name: &str,
    project: impl Fn(&K, &V) -> Option<P> + 'static,
) -> Coll<'s, P>
where
    K: Data,
    V: Data,
    P: Data,
{
    c.inner
        .unary(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for_each_change(data, |k, t, (a, ra), other| match other {
                        Some((b, rb)) => {
                            let (pa, pb) = (project(k, a), project(k, b));
                            if pa != pb {
                                session.give_iterator(pa.map(|p| (p, t, ra)).into_iter().chain(pb.map(|p| (p, t, rb))));
                            }
                        }
                        None => {
                            if let Some(p) = project(k, a) {
                                session.give((p, t, ra));
                            }
                        }
                    });
                });
            }
        })
        .as_collection()
}

/// `c` as sums: each update as `(key, sum)` by `project` (`None` drops
/// it), a difference times the update's multiplicity, added up per key
/// and time over every message waiting at one time: a session's change is
/// one difference, and a popular video's sessions changed at one time are
/// one more.
///
/// ```
/// use differential_dataflow::AsCollection;
/// use differential_dataflow::consolidation::consolidate_updates;
/// use timely::dataflow::operators::capture::Extract;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use reelflow_dataflows::operators::sum_changes;
///
/// // Session 1's watch time, added up per video.
/// let captured = timely::example(|scope| {
///     let summaries = vec![((1u32, (7u8, 10u32)), 0u64, 1isize), ((1, (7, 10)), 1, -1), ((1, (7, 20)), 1, 1)];
///     let summaries = summaries.to_stream(scope).as_collection();
///     let watched = sum_changes(summaries, "Watched", |_session, (video, ms)| Some((*video, *ms as isize)));
///     watched.inner.capture()
/// });
/// let mut changes: Vec<_> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// consolidate_updates(&mut changes);
/// assert_eq!(changes, vec![(7, 0, 10), (7, 1, 10)]);
/// ```
pub fn sum_changes<'s, K, V, J, R>(
    c: Coll<'s, (K, V)>,
    name: &str,
    project: impl Fn(&K, &V) -> Option<(J, R)> + 'static,
) -> Coll<'s, J, R>
where
    K: Data,
    V: Data,
    J: Data + Hash,
    R: Data + Abelian + Monoid + Multiply<isize, Output = R>,
{
    c.inner
        .unary(Pipeline, name, move |_, _| {
            let mut sums: HashMap<(J, Time), R> = HashMap::default();
            move |input, output| {
                // Every message waiting at one time is added up together:
                // a popular key's changes sent one message apart are one
                // difference too.
                input.for_each_stamp(|cap, containers| {
                    for data in containers {
                        for_each_change(data, |k, t, (a, ra), other| {
                            let pa = project(k, a).map(|(j, s)| (j, s.multiply(&ra)));
                            let pb = other.and_then(|(b, rb)| project(k, b).map(|(j, s)| (j, s.multiply(&rb))));
                            for (j, s) in pa.into_iter().chain(pb) {
                                sums.entry((j, t))
                                    .and_modify(|sum: &mut R| sum.plus_equals(&s))
                                    .or_insert(s);
                            }
                        });
                    }
                    let mut session = output.session(&cap);
                    for ((j, t), sum) in sums.drain() {
                        if !sum.is_zero() {
                            session.give((j, t, sum));
                        }
                    }
                });
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use differential_dataflow::AsCollection;
    use differential_dataflow::consolidation::consolidate;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use timely::dataflow::operators::ToStream;

    use super::*;
    use crate::operators::support::harness::{Update, at, run};

    /// Seeded changes of a few keys' totals, as `accumulate_beside` sends
    /// them (the old total retracted beside the new one), mixed with
    /// updates that are not part of a pair.
    fn changes(seed: u64) -> Vec<Update<(u8, u16)>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut totals = [None::<u16>; 4];
        let mut out = Vec::new();
        for time in 0..150 {
            let key = rng.random_range(0..4u8);
            let new = rng.random_range(0..40u16);
            let mut change = vec![((key, new), time, 1)];
            if let Some(old) = totals[key as usize].replace(new) {
                change.push(((key, old), time, -1));
            }
            // Consolidated, so in either order.
            change.sort();
            out.extend(change);
            if rng.random_bool(0.1) {
                let extra = ((rng.random_range(0..4u8), rng.random_range(0..40u16)), time, 1);
                out.extend([extra, (extra.0, time, -1)]);
            }
        }
        out
    }

    fn projections(
        input: &[Update<(u8, u16)>],
        project: impl Fn(&u8, &u16) -> Option<(u8, u16)>,
    ) -> Vec<Update<(u8, u16)>> {
        input
            .iter()
            .filter_map(|((k, v), t, r)| project(k, v).map(|p| (p, *t, *r)))
            .collect()
    }

    #[test]
    fn project_changes_is_the_projection_at_every_time() {
        // The tens: most changes leave it alone.
        let project = |k: &u8, v: &u16| (!v.is_multiple_of(7)).then_some((*k, v / 10));
        for seed in 0..20 {
            let input = changes(seed);
            let fed = input.clone();
            let output = run(move |scope| project_changes(fed.to_stream(scope).as_collection(), "Project", project));
            let expected = projections(&input, project);
            for time in 0..150 {
                assert_eq!(at(&output, time), at(&expected, time), "seed {seed}, time {time}");
            }
            // Fewer updates than the projection itself: unchanged parts were dropped.
            assert!(output.len() < expected.len(), "seed {seed}");
        }
    }

    #[test]
    fn sum_changes_is_the_sum_of_the_projection_at_every_time() {
        // Summed per tens of the key's total, so a change can move its sum
        // to another key.
        let project = |_: &u8, v: &u16| (!v.is_multiple_of(7)).then_some(((v / 10) as u8, *v as isize));
        for seed in 0..20 {
            let input = changes(seed);
            let fed = input.clone();
            let output = run(move |scope| sum_changes(fed.to_stream(scope).as_collection(), "Sum", project));
            for time in 0..150 {
                let mut expected: Vec<(u8, isize)> = input
                    .iter()
                    .filter(|u| u.1 <= time)
                    .filter_map(|((k, v), _, r)| project(k, v).map(|(j, s)| (j, s * r)))
                    .collect();
                consolidate(&mut expected);
                let mut got: Vec<(u8, isize)> = output
                    .iter()
                    .filter(|u| u.1 <= time)
                    .map(|(j, _, s)| (*j, *s))
                    .collect();
                consolidate(&mut got);
                assert_eq!(got, expected, "seed {seed}, time {time}");
            }
        }
    }
}
