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
//! - the input is arranged by key, and the arrangement is compacted to the
//!   operator's own frontier, so it holds each key's current values and
//!   nothing older;
//! - for each key a batch changes, it reads the key's values once from the
//!   arrangement, then applies the batch's updates time by time, in order,
//!   calling the logic after each time and sending only what changed;
//! - there is no output arrangement: the previous output is the logic
//!   applied to the values before the batch.
//!
//! The logic sees a key's values with their multiplicities, sorted and
//! without zeros, as `reduce` gives them, and is called only when the key
//! has values.

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::trace::cursor::Cursor;
use differential_dataflow::trace::{TraceReader, cursor::cursor_list};
use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::operator::Operator;
use timely::progress::frontier::Antichain;

use crate::views::{Coll, Time};

/// `reduce` for collections over log time.
pub trait ReduceTotal<'s, K, V> {
    /// For each key, `logic` maps its values (sorted, with multiplicities)
    /// to output values (with multiplicities); the result holds `(key,
    /// output)` as it stands at every time.
    fn reduce_total<O, L>(self, name: &str, logic: L) -> Coll<'s, (K, O)>
    where
        O: ExchangeData,
        L: FnMut(&K, &[(V, isize)], &mut Vec<(O, isize)>) + 'static;
}

impl<'s, K, V> ReduceTotal<'s, K, V> for Coll<'s, (K, V)>
where
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    fn reduce_total<O, L>(self, name: &str, mut logic: L) -> Coll<'s, (K, O)>
    where
        O: ExchangeData,
        L: FnMut(&K, &[(V, isize)], &mut Vec<(O, isize)>) + 'static,
    {
        let arranged = self.arrange_by_key_named(&format!("Arrange: {name}"));
        let mut trace = arranged.trace.clone();
        arranged
            .stream
            .unary_frontier(Pipeline, name, move |_, _| {
                // The times of the batches seen so far: `[0, upper)`.
                let mut lower = Antichain::from_elem(<Time as timely::progress::Timestamp>::minimum());
                let mut upper = lower.clone();
                let mut values: Vec<(V, isize)> = Vec::new();
                let mut changes: Vec<(Time, V, isize)> = Vec::new();
                let mut before: Vec<(O, isize)> = Vec::new();
                let mut after: Vec<(O, isize)> = Vec::new();
                let mut delta: Vec<(O, isize)> = Vec::new();
                move |(input, _frontier), output| {
                    lower.clone_from(&upper);
                    let mut batches = Vec::new();
                    let mut caps = CapabilitySet::new();
                    input.for_each(|cap, data| {
                        for cap in cap.retain_stamp(0).iter() {
                            caps.insert(cap.clone());
                        }
                        for batch in data.drain(..) {
                            // Batches arrive in time order.
                            upper.clone_from(batch.upper());
                            batches.push(batch);
                        }
                    });
                    if !caps.is_empty() {
                        let mut session = output.session(&caps);
                        let (mut new, new_storage) = cursor_list(batches.into_iter().filter_map(|b| b.inner).collect());
                        let (mut old, old_storage) = cursor_list(
                            trace
                                .batches_through(lower.borrow())
                                .expect("the operator holds back the trace's compaction"),
                        );
                        while let Some(key) = new.get_key(&new_storage) {
                            // The key's values before this batch.
                            values.clear();
                            old.seek_key(&old_storage, key);
                            if old.get_key(&old_storage) == Some(key) {
                                while let Some(value) = old.get_val(&old_storage) {
                                    let mut count = 0;
                                    old.map_times(&old_storage, |_, d| count += *d);
                                    if count != 0 {
                                        values.push((value.clone(), count));
                                    }
                                    old.step_val(&old_storage);
                                }
                            }
                            // The batch's updates of the key, in time order.
                            changes.clear();
                            while let Some(value) = new.get_val(&new_storage) {
                                new.map_times(&new_storage, |t, d| changes.push((*t, value.clone(), *d)));
                                new.step_val(&new_storage);
                            }
                            changes.sort_by_key(|(t, _, _)| *t);

                            before.clear();
                            if !values.is_empty() {
                                logic(key, &values, &mut before);
                                consolidate(&mut before);
                            }
                            let mut i = 0;
                            while i < changes.len() {
                                let time = changes[i].0;
                                while i < changes.len() && changes[i].0 == time {
                                    let (_, value, d) = &changes[i];
                                    values.push((value.clone(), *d));
                                    i += 1;
                                }
                                consolidate(&mut values);
                                after.clear();
                                if !values.is_empty() {
                                    logic(key, &values, &mut after);
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
                            }
                            new.step_key(&new_storage);
                        }
                    }
                    // Only the current values are read: let the arrangement
                    // compact everything older.
                    trace.advance_upper(&mut upper);
                    trace.set_logical_compaction(upper.borrow());
                    trace.set_physical_compaction(upper.borrow());
                }
            })
            .as_collection()
    }
}
