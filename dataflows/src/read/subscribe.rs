//! Subscriptions: a view's rows at one time, then every change after it,
//! as it happens, with progress markers — what `SUBSCRIBE` serves.
//!
//! How a subscription runs, on a cluster of any size:
//!
//! 1. The request travels like a peek ([`super::peek`]) to every worker.
//!    Once its shard is complete at `as_of`, each worker reads the rows at
//!    `as_of` *and* the updates after `as_of` its arrangement already
//!    holds (up to its upper `u`), and registers a `Tap` that forwards
//!    updates at `u` or later.
//! 2. Each view's arrangement also produces a stream of the batches it
//!    adds; a tap operator per view (`tap`) cuts the registered taps'
//!    updates out of every new batch and sends them to the worker that took
//!    the subscription. A batch the tap sees may already be in the
//!    arrangement the worker read in step 1; its updates are below `u` and
//!    are not sent again, so no update is lost or doubled.
//! 3. That worker (`Subscriber`) holds the updates until the frontier of
//!    the taps' stream passes their time — then nothing earlier can still
//!    arrive from any worker — and releases them in time order, consolidated,
//!    followed by a progress marker: every change before it has been sent.
//!
//! Buffering is bounded: updates sent to a consumer and not yet taken, plus
//! those waiting for the frontier, may not exceed the subscription's limit.
//! A consumer that falls further behind is dropped with
//! [`PeekError::TooSlow`], so a slow reader cannot grow the server's memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::trace::SpanOf;
use differential_dataflow::trace::cursor::Navigable;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use tokio::sync::mpsc;

use super::request::{PeekError, Selector};
use super::retention::Deriving;
use super::shapes::{Shape, ViewTrace};
use super::store::{read_changes, walk};
use crate::datum::Row;
use crate::schema::View;
use crate::time::Time;

/// One change of a view: `diff` copies of the row `(key, value)` appeared
/// (or, negative, went away) at `time`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Update {
    /// When.
    pub time: Time,
    /// How many copies came (positive) or went (negative).
    pub diff: isize,
    /// The row's key columns.
    pub key: Row,
    /// The row's other columns.
    pub value: Row,
}

/// What a subscription delivers, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum SubscribeEvent {
    /// Changes, sorted by time. The first event holds the rows at the
    /// subscription's `as_of`, each as an update at `as_of`.
    Updates(Vec<Update>),
    /// Every change before this time has been delivered.
    Progress(Time),
    /// The subscription ended; nothing follows.
    Error(PeekError),
}

impl SubscribeEvent {
    /// What the event counts for against the buffer limit.
    fn weight(&self) -> usize {
        match self {
            SubscribeEvent::Updates(u) => u.len().max(1),
            _ => 1,
        }
    }
}

/// A running subscription. Dropping it ends the subscription on every
/// worker.
#[derive(Debug)]
pub struct Subscription {
    /// The time of the initial rows.
    pub as_of: Time,
    events: mpsc::UnboundedReceiver<SubscribeEvent>,
    in_flight: Arc<AtomicUsize>,
    /// For a stored view: its stored rows' changes, made into its rows'.
    deriving: Option<Deriving>,
    /// The first updates (the rows at `as_of`) have been handed out.
    started: bool,
}

impl Subscription {
    /// The next event; `None` once the subscription has ended (after its
    /// [`SubscribeEvent::Error`], or when the dataflows shut down).
    pub async fn next(&mut self) -> Option<SubscribeEvent> {
        loop {
            let event = self.events.recv().await?;
            self.in_flight.fetch_sub(event.weight(), Ordering::Relaxed);
            let event = match (event, self.deriving.as_mut()) {
                (SubscribeEvent::Updates(updates), Some(deriving)) => {
                    let changes = deriving.changes(updates);
                    // Stored changes that change no row the caller reads
                    // are not an event; the first one always is.
                    if changes.is_empty() && self.started {
                        continue;
                    }
                    SubscribeEvent::Updates(changes)
                }
                (event, _) => event,
            };
            self.started |= matches!(event, SubscribeEvent::Updates(_));
            return Some(event);
        }
    }

    /// Derives a stored view's changes as they are read.
    pub(crate) fn derive(&mut self, deriving: Option<Deriving>) {
        self.deriving = deriving;
    }
}

/// A subscription on the worker that took it.
pub(crate) struct Subscriber {
    view: View,
    as_of: Time,
    /// Workers that have not yet sent their initial rows.
    replies_left: usize,
    /// The initial rows and updates, until every worker has sent them.
    initial: Vec<Update>,
    /// Updates waiting for the frontier to pass their time.
    pending: Vec<Update>,
    /// The initial rows have been sent.
    started: bool,
    /// Updates before this time have been sent.
    sent_to: Time,
    /// The last progress marker sent, and when.
    progress: (Time, Instant),
    error: Option<PeekError>,
    too_slow: bool,
    events: mpsc::UnboundedSender<SubscribeEvent>,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

/// Subscriptions this worker took, by request id.
pub(crate) type Subscribers = Rc<RefCell<HashMap<u64, Subscriber>>>;

/// Progress markers for a quiet subscription are sent at most this often;
/// a marker always follows updates.
const QUIET_PROGRESS: Duration = Duration::from_millis(100);

impl Subscriber {
    /// A subscriber, and the handle its consumer reads; the worker that
    /// sends its requests says how many replies to wait for
    /// ([`Subscriber::expect_replies`]).
    pub(crate) fn new(view: View, as_of: Time, limit: usize) -> (Self, Subscription) {
        let (sender, events) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let subscriber = Self {
            view,
            as_of,
            replies_left: 0,
            initial: Vec::new(),
            pending: Vec::new(),
            started: false,
            sent_to: as_of + 1,
            progress: (as_of, Instant::now()),
            error: None,
            too_slow: false,
            events: sender,
            in_flight: Arc::clone(&in_flight),
            limit,
        };
        let subscription = Subscription {
            as_of,
            events,
            in_flight,
            deriving: None,
            started: false,
        };
        (subscriber, subscription)
    }

    /// How many workers will send initial rows.
    pub(crate) fn expect_replies(&mut self, n: usize) {
        self.replies_left = n;
    }

    /// One worker's initial rows (at `as_of`) and the updates after it.
    pub(crate) fn started(&mut self, rows: Result<Vec<(Row, Row)>, PeekError>, changes: Vec<Update>) {
        self.replies_left = self.replies_left.saturating_sub(1);
        match rows {
            Ok(rows) => {
                let as_of = self.as_of;
                self.initial.extend(rows.into_iter().map(|(key, value)| Update {
                    time: as_of,
                    diff: 1,
                    key,
                    value,
                }));
                self.pending.extend(changes);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// A tap's update.
    pub(crate) fn push(&mut self, update: Update) {
        self.pending.push(update);
    }

    fn send(&mut self, event: SubscribeEvent) -> bool {
        self.in_flight.fetch_add(event.weight(), Ordering::Relaxed);
        self.events.send(event).is_ok()
    }

    /// Sends what the frontier `upper` of the taps allows. Returns `false`
    /// when the subscription is over (ended by an error, or its consumer
    /// has gone) and should be removed.
    pub(crate) fn release(&mut self, upper: Time) -> bool {
        if self.events.is_closed() {
            return false;
        }
        if let Some(e) = self.error.take() {
            self.send(SubscribeEvent::Error(e));
            return false;
        }
        if self.replies_left > 0 {
            return true;
        }
        let initial = !self.started;
        let mut ready = if initial {
            std::mem::take(&mut self.initial)
        } else {
            Vec::new()
        };
        let moved = !initial && upper > self.sent_to;
        if moved {
            let (now, later): (Vec<Update>, Vec<Update>) = self.pending.drain(..).partition(|u| u.time < upper);
            self.pending = later;
            ready.extend(now);
        }
        consolidate(&mut ready);
        // Only what the consumer has not taken counts against it: updates
        // waiting for the frontier wait on the dataflows, not on the reader.
        let buffered = self.in_flight.load(Ordering::Relaxed) + ready.len();
        if buffered > self.limit {
            self.too_slow = true;
            self.send(SubscribeEvent::Error(PeekError::TooSlow {
                buffered,
                limit: self.limit,
            }));
            return false;
        }
        if initial {
            self.started = true;
            self.sent_to = self.as_of + 1;
        } else if moved {
            self.sent_to = upper;
        }
        // The initial rows are sent even when there are none.
        let changed = initial || !ready.is_empty();
        if changed && !self.send(SubscribeEvent::Updates(ready)) {
            return false;
        }
        // A marker follows every batch of updates; a quiet subscription
        // gets one now and then, once the frontier has moved.
        if self.sent_to > self.progress.0 && (changed || self.progress.1.elapsed() >= QUIET_PROGRESS) {
            self.progress = (self.sent_to, Instant::now());
            return self.send(SubscribeEvent::Progress(self.sent_to));
        }
        true
    }

    /// The view subscribed to.
    pub(crate) fn view(&self) -> View {
        self.view
    }

    /// The time of the initial rows.
    pub(crate) fn as_of(&self) -> Time {
        self.as_of
    }

    /// Whether it ended because its consumer fell behind.
    pub(crate) fn dropped_as_too_slow(&self) -> bool {
        self.too_slow
    }

    /// Tells the consumer the dataflows are shutting down.
    pub(crate) fn shut_down(mut self) {
        self.send(SubscribeEvent::Error(PeekError::ShutDown));
    }
}

/// Sorts updates by time and row and adds up the diffs of equal ones.
fn consolidate(updates: &mut Vec<Update>) {
    let mut triples: Vec<((Row, Row), Time, isize)> =
        updates.drain(..).map(|u| ((u.key, u.value), u.time, u.diff)).collect();
    consolidate_updates(&mut triples);
    updates.extend(
        triples
            .into_iter()
            .map(|((key, value), time, diff)| Update { time, diff, key, value }),
    );
    updates.sort_by(|a, b| (a.time, &a.key, &a.value).cmp(&(b.time, &b.key, &b.value)));
}

/// A subscription's tap on one worker: which rows of which view it wants,
/// and from which time on (earlier updates were read from the arrangement
/// when the tap was registered).
#[derive(Debug, Clone)]
pub(crate) struct Tap {
    pub(crate) view: View,
    pub(crate) selector: Selector,
    pub(crate) from: Time,
}

/// The taps registered on this worker, by `(origin worker, request id)`:
/// one per key of the subscription this worker owns, or one for all rows.
pub(crate) type Taps = Rc<RefCell<HashMap<(usize, u64), Vec<Tap>>>>;

/// An update on its way from a tap to the subscription's worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TapUpdate {
    origin: usize,
    id: u64,
    update: Update,
}

/// Cuts the taps' updates out of the batches `view`'s arrangement adds, as
/// rows of the `shape` it is read in.
pub(crate) fn tap<'s, K, V>(
    batches: Stream<'s, Time, Vec<SpanOf<ViewTrace<K, V>>>>,
    view: View,
    taps: Taps,
    shape: Shape<K, V>,
) -> Stream<'s, Time, Vec<TapUpdate>>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    batches.unary(Pipeline, "SubscribeTap", move |_cap, _info| {
        let mut changes = Vec::new();
        move |input, output| {
            input.for_each(|time, data| {
                let taps = taps.borrow();
                if !taps.values().flatten().any(|t| t.view == view) {
                    return;
                }
                let mut session = output.session(&time);
                for span in data.iter() {
                    let Some(batch) = span.inner.as_ref() else {
                        continue;
                    };
                    let mine = taps
                        .iter()
                        .flat_map(|(at, taps)| taps.iter().map(move |t| (at, t)))
                        .filter(|(_, t)| t.view == view);
                    for (&(origin, id), tap) in mine {
                        let mut cursor = batch.cursor();
                        walk(&mut cursor, batch, &tap.selector, &shape, |cursor, storage| {
                            read_changes(cursor, storage, tap.from.saturating_sub(1), &shape, &mut changes);
                        });
                        for update in changes.drain(..) {
                            session.give(TapUpdate { origin, id, update });
                        }
                    }
                }
            });
        }
    })
}

/// Delivers the taps' updates to the subscribers of this worker, and keeps
/// `upper` at the frontier of the taps' stream: no update earlier than it
/// can still arrive from any worker.
pub(crate) fn deliver(taps: Stream<'_, Time, Vec<TapUpdate>>, subscribers: Subscribers, upper: Rc<Cell<Time>>) {
    taps.sink(
        Exchange::new(|u: &TapUpdate| u.origin as u64),
        "SubscribeDeliver",
        move |(input, frontier)| {
            input.for_each(|_time, data| {
                let mut subscribers = subscribers.borrow_mut();
                for u in data.drain(..) {
                    if let Some(s) = subscribers.get_mut(&u.id) {
                        s.push(u.update);
                    }
                }
            });
            upper.set(frontier.frontier().first().copied().unwrap_or(Time::MAX));
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Datum;

    /// A subscriber at 10 waiting for `replies` workers, with `limit`.
    fn waiting_for(replies: usize, limit: usize) -> (Subscriber, Subscription) {
        let (mut s, sub) = Subscriber::new(View::VideoStats, 10, limit);
        s.expect_replies(replies);
        (s, sub)
    }

    /// Everything the subscription has been sent so far.
    fn sent(sub: &mut Subscription) -> Vec<SubscribeEvent> {
        std::iter::from_fn(|| sub.events.try_recv().ok()).collect()
    }

    fn update(time: Time, diff: isize, key: i64) -> Update {
        Update {
            time,
            diff,
            key: vec![Datum::Int(key)],
            value: vec![],
        }
    }

    #[test]
    fn releases_in_time_order_up_to_the_frontier_then_marks_progress() {
        let (mut s, mut sub) = waiting_for(2, 100);
        s.push(update(12, 1, 7));
        s.started(Ok(vec![(vec![Datum::Int(1)], vec![])]), vec![update(11, 1, 2)]);
        assert!(s.release(20));
        // One worker has not answered: nothing yet.
        assert!(sub.events.try_recv().is_err());
        s.started(Ok(vec![]), vec![update(13, -1, 2), update(11, -1, 2)]);
        s.push(update(15, 1, 3));
        assert!(s.release(14));
        assert!(s.release(14));
        let events = sent(&mut sub);
        assert_eq!(
            events,
            vec![
                SubscribeEvent::Updates(vec![update(10, 1, 1)]),
                SubscribeEvent::Progress(11),
                // 11: +2 and -2 cancel out.
                SubscribeEvent::Updates(vec![update(12, 1, 7), update(13, -1, 2)]),
                SubscribeEvent::Progress(14),
            ]
        );
    }

    #[test]
    fn a_consumer_too_far_behind_is_dropped_with_an_error() {
        let (mut s, mut sub) = waiting_for(1, 3);
        s.started(Ok(vec![]), vec![]);
        for i in 0..5 {
            s.push(update(11, 1, i));
        }
        // The (empty) initial rows and their marker go out; then 5 updates
        // would join the 2 events the consumer has not taken.
        assert!(s.release(12));
        assert!(!s.release(12));
        let events = sent(&mut sub);
        assert_eq!(
            events,
            vec![
                SubscribeEvent::Updates(vec![]),
                SubscribeEvent::Progress(11),
                SubscribeEvent::Error(PeekError::TooSlow { buffered: 7, limit: 3 }),
            ]
        );
    }

    #[test]
    fn updates_waiting_for_the_frontier_do_not_count_against_the_reader() {
        let (mut s, mut sub) = waiting_for(1, 3);
        s.started(Ok(vec![]), vec![]);
        assert!(s.release(11));
        // The frontier stalls while updates arrive: nothing is the reader's.
        for i in 0..10 {
            s.push(update(20, 1, i));
        }
        assert!(s.release(11));
        let events = sent(&mut sub);
        assert_eq!(
            events,
            vec![SubscribeEvent::Updates(vec![]), SubscribeEvent::Progress(11)]
        );
    }

    #[test]
    fn a_quiet_subscription_still_gets_its_last_progress_marker() {
        let (mut s, mut sub) = waiting_for(1, 100);
        s.started(Ok(vec![]), vec![]);
        assert!(s.release(11));
        // The frontier moves with no change, then stops: the marker comes
        // once QUIET_PROGRESS has passed.
        assert!(s.release(15));
        std::thread::sleep(QUIET_PROGRESS + Duration::from_millis(10));
        assert!(s.release(15));
        let events = sent(&mut sub);
        assert_eq!(
            events,
            vec![
                SubscribeEvent::Updates(vec![]),
                SubscribeEvent::Progress(11),
                SubscribeEvent::Progress(15)
            ]
        );
    }
}
