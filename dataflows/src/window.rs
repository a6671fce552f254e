//! Windows over log time: a collection as it stood over the last `len`.
//!
//! A windowed collection is the collection plus each of its updates
//! negated again at `t + len`, so `concurrent_viewers` and `trending`
//! change as time passes even when no event arrives. Differential's
//! `delay` would stamp those retractions with their future time and send
//! them on at once; the next arrangement's batcher then holds them until
//! the frontier reaches them, and walks every one of them each time it
//! seals a batch. With a minute of heartbeats and a day of session starts
//! waiting, every tick of the clock paid for the whole window: at 30,000
//! events/s the two windowed views cost more than all the others
//! together (BENCHMARKS.md). Here the retractions wait in a queue ordered
//! by time, under one capability for the earliest, and each goes
//! downstream only once the frontier has reached its time.

use std::collections::BTreeMap;
use std::time::Duration;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, Data};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

use crate::views::{Coll, Time};

/// `c` as it stood over the last `len` of time: each update `(d, logged)`
/// is `d`, retracted again at `logged + len` — `logged` is the update's
/// exact time, which a source catching up may have emitted it later than
/// ([`crate::source`]); never before the update itself.
pub fn windowed<'s, D: Data>(c: Coll<'s, (D, Time)>, len: Duration) -> Coll<'s, D> {
    let len = Time::try_from(len.as_millis()).unwrap_or(Time::MAX);
    c.clone().map(|(d, _)| d).concat(retract_after(c, len))
}

/// Each update `(d, logged)` of `c` as `d` negated at `logged + len` (or at
/// its own time, if later), sent when the frontier reaches that time.
fn retract_after<'s, D: Data>(c: Coll<'s, (D, Time)>, len: Time) -> Coll<'s, D> {
    c.inner
        .unary_frontier(Pipeline, "RetractAfter", move |_, _| {
            let mut due: BTreeMap<Time, Vec<(D, isize)>> = BTreeMap::new();
            // At the earliest time in `due`; none when it is empty.
            let mut held: Option<Capability<Time>> = None;
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for ((d, logged), t, r) in data.drain(..) {
                        let at = logged.saturating_add(len).max(t);
                        if held.as_ref().is_none_or(|h| at < *h.time()) {
                            held = Some(cap.delayed(&at, 0));
                        }
                        due.entry(at).or_default().push((d, -r));
                    }
                });
                // Input still to come is at the frontier or later, so what
                // it adds is due after anything due by the frontier now.
                while let Some(entry) = due.first_entry() {
                    let at = *entry.key();
                    if frontier.less_than(&at) {
                        break;
                    }
                    let mut updates = entry.remove();
                    consolidate(&mut updates);
                    let cap = held.as_ref().expect("held while anything is due").delayed(&at);
                    output
                        .session(&cap)
                        .give_iterator(updates.into_iter().map(|(d, r)| (d, at, r)));
                }
                held = match (held.take(), due.keys().next()) {
                    (Some(mut h), Some(next)) => {
                        h.downgrade(next);
                        Some(h)
                    }
                    _ => None,
                };
            }
        })
        .as_collection()
}
