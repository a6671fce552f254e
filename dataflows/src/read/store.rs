//! A view's arrangement on one worker, in the types its dataflow makes,
//! read as rows.
//!
//! Views that change seldom are arranged as the rows they are read as
//! ([`ROWS`]). Those that change with every heartbeat are arranged in the
//! dataflow's own types, and their rows are made only when read: by a peek
//! ([`ViewStore::answer`]) or a subscription's tap
//! ([`super::subscribe::tap`]). Rows — vectors of datums, compared datum by
//! datum and cloned at every merge — cost those arrangements more than the
//! joins that fed them. `video_stats` and `qoe` are made of the same figures
//! per video, so they share one arrangement of those figures; `retention`
//! and `watch_history` have one each. A [`Shape`] says how a view reads its
//! arrangement's keys and values as rows; keys are ordered as their rows
//! are, so key lookups seek, and ranges seek their lower bound (often a
//! prefix: a video's buckets, a viewer's history) and scan in order.

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::trace::cursor::{Cursor, Navigable};
use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
use timely::progress::Antichain;

use super::request::{PeekError, PeekRequest, RequestKind, Selector};
use super::shapes::{Shape, ViewTrace};
use super::subscribe::Update;
use crate::datum::Row;
use crate::time::Time;

/// What one worker read for a request.
pub(crate) struct Answer {
    /// The rows at `as_of`.
    pub rows: Vec<(Row, Row)>,
    /// For a subscription, the updates after `as_of` below `upper`.
    pub changes: Vec<Update>,
    /// How far the shard was complete when read.
    pub upper: Time,
}

/// One view's arrangement on one worker.
pub(crate) trait ViewStore {
    /// This worker's answer to `request`, or `None` while its shard of the
    /// view is not yet complete at `as_of`.
    fn answer(&mut self, request: &PeekRequest) -> Option<Result<Answer, PeekError>>;
    /// How far the arrangement is complete.
    fn upper(&mut self) -> Time;
    /// The oldest time it can still be read at.
    fn since(&mut self) -> Time;
    /// Lets it forget the times before `since`.
    fn compact_to(&mut self, since: Time);
    /// The updates it holds.
    fn len(&mut self) -> usize;
}

/// A view read from an arrangement through its [`Shape`].
pub(crate) struct Store<K: Ord + Clone + 'static, V: Ord + Clone + 'static> {
    trace: ViewTrace<K, V>,
    shape: Shape<K, V>,
}

impl<K, V> Store<K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    pub(crate) fn new(trace: ViewTrace<K, V>, shape: Shape<K, V>) -> Self {
        Self { trace, shape }
    }
}

impl<K, V> ViewStore for Store<K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    fn answer(&mut self, request: &PeekRequest) -> Option<Result<Answer, PeekError>> {
        let as_of = request.as_of;
        let upper = self.upper();
        if upper <= as_of {
            return None;
        }
        let since = self.since();
        if as_of < since {
            return Some(Err(PeekError::Compacted { as_of, since }));
        }
        let batches = self
            .trace
            .batches_through(Antichain::new().borrow())
            .unwrap_or_default();
        // Each batch is read on its own and the rows added up after: a key
        // whose value changed thousands of times within the history (the
        // top of `trending`) would otherwise be merged value by value
        // across every batch, which cost a worker a third of its time
        // under load.
        let mut counted: Vec<((Row, Row), isize)> = Vec::new();
        let mut changes = Vec::new();
        let subscribe = request.kind == RequestKind::Subscribe;
        let shape = self.shape;
        for batch in &batches {
            let mut cursor = batch.cursor();
            walk(&mut cursor, batch, &request.selector, &shape, |cursor, storage| {
                read_counts(cursor, storage, as_of, &shape, &mut counted);
                if subscribe {
                    cursor.rewind_vals(storage);
                    read_changes(cursor, storage, as_of, &shape, &mut changes);
                }
            });
        }
        consolidate(&mut counted);
        let mut rows = Vec::new();
        for ((key, val), count) in counted {
            if count < 0 {
                return Some(Err(PeekError::Internal {
                    view: request.view.def().name.to_string(),
                    detail: format!("row {key:?} → {val:?} has multiplicity {count}"),
                }));
            }
            rows.extend(std::iter::repeat_n((key, val), count as usize));
        }
        Some(Ok(Answer { rows, changes, upper }))
    }

    fn upper(&mut self) -> Time {
        let mut upper = Antichain::new();
        self.trace.read_upper(&mut upper);
        upper.first().copied().unwrap_or(Time::MAX)
    }

    fn since(&mut self) -> Time {
        self.trace.get_logical_compaction().first().copied().unwrap_or(0)
    }

    fn compact_to(&mut self, since: Time) {
        if since > self.since() {
            self.trace.set_logical_compaction(Antichain::from_elem(since).borrow());
            self.trace.set_physical_compaction(Antichain::from_elem(since).borrow());
        }
    }

    fn len(&mut self) -> usize {
        let mut n = 0;
        self.trace.map_spans(|span| {
            if let Some(batch) = &span.inner {
                n += batch.len();
            }
        });
        n
    }
}

/// Calls `visit` with the cursor on each key `selector` picks.
pub(crate) fn walk<K, V, C>(
    cursor: &mut C,
    storage: &C::Storage,
    selector: &Selector,
    shape: &Shape<K, V>,
    mut visit: impl FnMut(&mut C, &C::Storage),
) where
    K: Ord,
    C: for<'a> Cursor<Key<'a> = &'a K>,
{
    match selector {
        Selector::All => {
            while cursor.key_valid(storage) {
                visit(cursor, storage);
                cursor.step_key(storage);
            }
        }
        Selector::Keys(rows) => {
            let mut keys: Vec<K> = rows.iter().filter_map(shape.key).collect();
            keys.sort();
            keys.dedup();
            for key in &keys {
                cursor.seek_key(storage, key);
                if cursor.get_key(storage) == Some(key) {
                    visit(cursor, storage);
                }
            }
        }
        Selector::Range { from, to } => {
            if let Some(from) = from.as_ref().and_then(shape.seek) {
                cursor.seek_key(storage, &from);
            }
            while let Some(key) = cursor.get_key(storage) {
                let row = (shape.key_row)(key);
                if to.as_ref().is_some_and(|to| row >= *to) {
                    break;
                }
                if from.as_ref().is_none_or(|from| row >= *from) {
                    visit(cursor, storage);
                }
                cursor.step_key(storage);
            }
        }
    }
}

/// Appends the updates of the cursor's current key at times after `after`.
pub(crate) fn read_changes<K, V, C>(
    cursor: &mut C,
    storage: &C::Storage,
    after: Time,
    shape: &Shape<K, V>,
    changes: &mut Vec<Update>,
) where
    C: for<'a> Cursor<Key<'a> = &'a K, Val<'a> = &'a V, TimeGat<'a> = &'a Time, DiffGat<'a> = &'a isize>,
{
    let key = cursor.key(storage);
    let key_row = (shape.key_row)(key);
    while let Some(val) = cursor.get_val(storage) {
        let mut value = None;
        cursor.map_times(storage, |t, d| {
            if *t > after {
                changes.push(Update {
                    time: *t,
                    diff: *d,
                    key: key_row.clone(),
                    value: value.get_or_insert_with(|| (shape.val_row)(key, val)).clone(),
                });
            }
        });
        cursor.step_val(storage);
    }
}

/// Appends the rows of the cursor's current key with their multiplicity at
/// `as_of`, in this cursor's updates alone.
fn read_counts<K, V, C>(
    cursor: &mut C,
    storage: &C::Storage,
    as_of: Time,
    shape: &Shape<K, V>,
    counted: &mut Vec<((Row, Row), isize)>,
) where
    C: for<'a> Cursor<Key<'a> = &'a K, Val<'a> = &'a V, TimeGat<'a> = &'a Time, DiffGat<'a> = &'a isize>,
{
    let key = cursor.key(storage);
    let mut key_row = None;
    while let Some(val) = cursor.get_val(storage) {
        let mut count = 0isize;
        cursor.map_times(storage, |t, d| {
            if *t <= as_of {
                count += *d;
            }
        });
        if count != 0 {
            let key_row = key_row.get_or_insert_with(|| (shape.key_row)(key)).clone();
            counted.push(((key_row, (shape.val_row)(key, val)), count));
        }
        cursor.step_val(storage);
    }
}
