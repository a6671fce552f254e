//! What stays readable, agreed by the whole cluster.
//!
//! A process's sources stamp every record older than its *horizon* (its
//! start, less the retained history) coarsely, to catch up faster
//! ([`crate::source`]), so no read may ask for a time before the horizon,
//! and after it only for the last `history` of time. Each process reads
//! its own clock when it starts, and the processes of a cluster start
//! seconds apart (a StatefulSet's pods). With a horizon of its own, a
//! process that started earlier would take a read at a time a later one
//! had stamped coarsely: the later one would refuse it, or, in the moment
//! before its compaction caught up, answer it with records missing. So
//! before anything is read, every worker proposes its process's horizon and
//! history, and all of them take the latest horizon and the shortest
//! history ([`agree`]): every process then stamps, compacts and admits
//! reads by the same [`Retained`].

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

use crate::time::Time;
use crate::time::now_ms;

/// Which past times the views keep readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// Nothing before it is ever readable.
    pub horizon: Time,
    /// How far behind the latest complete time a read may ask for.
    pub history: Time,
    /// The earliest and latest frontier of the snapshots the processes
    /// started from (0 without one): equal, or the views are not one
    /// state ([`Retained::snapshot_agreed`]).
    pub snapshots: (Time, Time),
}

impl Retained {
    /// What a process starting now with `history` proposes.
    pub fn proposed(history: Duration) -> Self {
        let history = history.as_millis() as Time;
        Self {
            horizon: now_ms().saturating_sub(history),
            history,
            snapshots: (0, 0),
        }
    }

    /// The proposal of a process starting from a snapshot with this
    /// frontier: nothing before the frontier is readable either.
    pub fn from_snapshot(self, frontier: Time) -> Self {
        Self {
            horizon: self.horizon.max(frontier),
            snapshots: (frontier, frontier),
            ..self
        }
    }

    /// Whether every process started from the same snapshot (or none).
    pub fn snapshot_agreed(&self) -> bool {
        self.snapshots.0 == self.snapshots.1
    }

    /// What holds for both this and `other`: the later horizon, the shorter
    /// history.
    pub fn and(self, other: Self) -> Self {
        Self {
            horizon: self.horizon.max(other.horizon),
            history: self.history.min(other.history),
            snapshots: (
                self.snapshots.0.min(other.snapshots.0),
                self.snapshots.1.max(other.snapshots.1),
            ),
        }
    }

    /// The oldest readable time when the views are complete up to `upper`:
    /// `history` before it, never before the horizon, and never after
    /// `upper`.
    pub fn since(&self, upper: Time) -> Time {
        upper.saturating_sub(self.history).max(self.horizon.min(upper))
    }
}

/// What every worker of the cluster agrees on, each having proposed
/// `proposal`: all of the proposals taken together ([`Retained::and`]).
/// Every worker must call it, before building any other dataflow. `None`
/// if `stop` is set first.
pub(crate) fn agree(worker: &mut timely::worker::Worker, proposal: Retained, stop: &AtomicBool) -> Option<Retained> {
    let mut input = InputHandle::new();
    let done = ProbeHandle::new();
    let agreed = Rc::new(Cell::new(proposal));
    let seen = Rc::clone(&agreed);
    worker.dataflow::<u64, _, _>(|scope| {
        input
            .to_stream(scope)
            .broadcast()
            .inspect(move |r: &Retained| seen.set(seen.get().and(*r)))
            .probe_with(&done);
    });
    input.send(proposal);
    input.close();
    while !done.done() {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        worker.step_or_park(Some(Duration::from_millis(10)));
    }
    Some(agreed.get())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn workers_agree_on_the_latest_horizon_and_the_shortest_history() {
        let stop = Arc::new(AtomicBool::new(false));
        let guards = timely::execute(timely::Config::process(3), move |worker| {
            let i = worker.index() as Time;
            let proposal = Retained {
                horizon: 1_000 + 10 * i,
                history: 500 - i,
                snapshots: (0, 0),
            }
            .from_snapshot(if i == 1 { 900 } else { 0 });
            agree(worker, proposal, &stop)
        })
        .unwrap();
        let agreed: Vec<_> = guards.join().into_iter().map(Result::unwrap).collect();
        let expected = Retained {
            horizon: 1_020,
            history: 498,
            snapshots: (0, 900),
        };
        assert_eq!(agreed, vec![Some(expected); 3]);
        assert!(!expected.snapshot_agreed(), "one worker started from another snapshot");
    }

    #[test]
    fn since_keeps_the_history_and_nothing_before_the_horizon() {
        let r = Retained {
            horizon: 1_000,
            history: 300,
            snapshots: (0, 0),
        };
        assert_eq!(r.since(5_000), 4_700);
        assert_eq!(r.since(1_200), 1_000, "never before the horizon");
        assert_eq!(r.since(800), 800, "nothing before the upper either");
    }
}
