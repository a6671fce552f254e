//! The log folded into a [`Snapshot`], incrementally.
//!
//! The compactor reads records in each partition's offset order, stamps
//! them as the sources do ([`crate::source::stamp`]), and applies them in
//! time order, all partitions together. Sessions close exactly as
//! `accumulate_beside` closes them: at their latest record's time plus
//! their linger ([`Windows::linger`]), before anything at that time, beside
//! the video's duration as it stood before. A closed session is folded
//! into [`Closed`] as the views' readers fold it and forgotten.
//!
//! It only applies a record once no partition can still bring an earlier
//! one: the caller names that `frontier` (the sources' rule: a partition
//! read to its high watermark can only get records stamped from the moment
//! of that check on, less a grace). Records at or after it stay unread,
//! and the next pass starts with them.

use std::collections::{BTreeMap, BTreeSet};

use reelflow_ingest::log::Record;
use uuid::Uuid;

use super::{Closed, PartitionMark, Snapshot};
use crate::definitions::{History, MediaState, SessionAccumulator, SessionEvent, VideoSums, startup_bucket};
use crate::facts::{Beacon, CatalogFact, Fact, MediaChange, MediaFact, Order, PlaybackFact, decode};
use crate::operators::Accumulator;
use crate::operators::support::HashMap;
use crate::source::stamp;
use crate::time::Time;
use crate::views::{Windows, spread};

/// A log being folded into snapshots; see the module doc.
pub struct Compactor {
    windows: Windows,
    tick: Time,
    frontier: Time,
    marks: BTreeMap<(String, u32), PartitionMark>,
    catalog: HashMap<Uuid, (Time, CatalogFact)>,
    media: HashMap<Uuid, Media>,
    sessions: HashMap<Uuid, OpenSession>,
    /// Sessions due to close, by when; an entry is stale once the
    /// session's deadline has moved on.
    deadlines: BTreeMap<Time, Vec<Uuid>>,
    closed: Folded,
}

/// A video's media events, and the duration they give, once asked.
#[derive(Default)]
struct Media {
    events: Vec<(Time, MediaFact)>,
    changes: BTreeSet<(Order, MediaChange)>,
    duration: Option<Option<u64>>,
}

impl Media {
    fn duration_ms(&mut self) -> Option<u64> {
        *self.duration.get_or_insert_with(|| {
            MediaState::fold(self.changes.iter().map(|(o, c)| (o, c))).and_then(|s| s.duration_ms)
        })
    }
}

/// A session still open: its fold, its records, and when it closes.
struct OpenSession {
    acc: SessionAccumulator,
    records: Vec<(Time, PlaybackFact)>,
    deadline: Option<Time>,
}

/// [`Closed`], as maps.
#[derive(Default)]
struct Folded {
    totals: HashMap<Uuid, VideoSums>,
    viewers: HashMap<(Uuid, Uuid), i64>,
    anonymous: HashMap<Uuid, i64>,
    startups: HashMap<(Uuid, Option<u64>), i64>,
    retention: HashMap<(Uuid, u64), i64>,
    last_view: HashMap<(Uuid, u8), i64>,
    history: HashMap<(Uuid, Uuid), History>,
    starts: BTreeSet<(Time, (Uuid, Uuid))>,
}

impl Compactor {
    /// An empty log's compactor, for views with `windows`, stamping to
    /// `tick_ms` as the sources do.
    pub fn new(windows: &Windows, tick_ms: Time) -> Self {
        Self {
            windows: windows.clone(),
            tick: tick_ms.max(1),
            frontier: 0,
            marks: BTreeMap::new(),
            catalog: HashMap::default(),
            media: HashMap::default(),
            sessions: HashMap::default(),
            deadlines: BTreeMap::new(),
            closed: Folded::default(),
        }
    }

    /// Carries on from `snapshot`.
    pub fn resume(snapshot: &Snapshot, windows: &Windows) -> Self {
        let mut c = Self::new(windows, snapshot.tick);
        c.frontier = snapshot.frontier;
        c.marks = snapshot
            .partitions
            .iter()
            .map(|m| ((m.topic.clone(), m.partition), m.clone()))
            .collect();
        for (t, f) in &snapshot.catalog {
            c.catalog.insert(f.video_id, (*t, f.clone()));
        }
        for (t, f) in &snapshot.media {
            c.add_media(*t, f.clone());
        }
        let mut playback = snapshot.playback.clone();
        playback.sort_by_key(|(t, _)| *t);
        for (t, records) in by_time(playback) {
            c.add_playback(t, records);
        }
        let s = &snapshot.closed;
        let f = &mut c.closed;
        f.totals = s.totals.iter().copied().collect();
        f.viewers = s.viewers.iter().copied().collect();
        f.anonymous = s.anonymous.iter().copied().collect();
        f.startups = s.startups.iter().copied().collect();
        f.retention = s.retention.iter().copied().collect();
        f.last_view = s.last_view.iter().copied().collect();
        f.history = s.history.iter().copied().collect();
        f.starts = s.starts.iter().copied().collect();
        c
    }

    /// Where `topic`'s `partition` was left, if anything of it was read.
    pub fn mark(&self, topic: &str, partition: u32) -> Option<&PartitionMark> {
        self.marks.get(&(topic.to_string(), partition))
    }

    /// Folds in `records` stamped before `frontier`, and closes the
    /// sessions due by it. `records` hold each partition's in offset order,
    /// from its mark on (earlier ones are skipped); a partition's records
    /// from its first stamped at or after `frontier` are left for a later
    /// pass, as is everything when `frontier` is not past the last one.
    pub fn advance(&mut self, records: &[Record], frontier: Time) {
        if frontier <= self.frontier {
            return;
        }
        let mut facts: Vec<(Time, Fact)> = Vec::new();
        let mut stopped: BTreeSet<(&str, u32)> = BTreeSet::new();
        for r in records {
            if stopped.contains(&(r.topic.as_str(), r.partition)) {
                continue;
            }
            let key = (r.topic.clone(), r.partition);
            let (from, lower) = self
                .marks
                .get(&key)
                .map_or((0, self.frontier), |m| (m.offset, m.last.max(self.frontier)));
            if r.offset < from {
                continue;
            }
            // Never before the last frontier: a record that reached the log
            // late is moved up to it (so a partition not covered yet too).
            let ts = stamp(r.timestamp_ms, lower, self.tick);
            if ts >= frontier {
                stopped.insert((r.topic.as_str(), r.partition));
                continue;
            }
            let mark = self.marks.entry(key).or_insert_with(|| PartitionMark {
                topic: r.topic.clone(),
                partition: r.partition,
                offset: 0,
                last: 0,
                malformed: 0,
                hours: Vec::new(),
            });
            mark.last = ts;
            mark.offset = r.offset + 1;
            mark.index(r.offset, ts);
            match decode(&r.topic, &r.value) {
                Ok(Fact::Playback(mut p)) => {
                    p.logged_at = ts;
                    facts.push((ts, Fact::Playback(p)));
                }
                Ok(f) => facts.push((ts, f)),
                Err(_) => mark.malformed += 1,
            }
        }
        facts.sort_by_key(|(t, _)| *t);
        for (t, group) in by_time(facts) {
            // Sessions due at `t` close before anything stamped at it.
            self.close_until(t.saturating_add(1));
            let mut playback = Vec::new();
            for f in group {
                match f {
                    Fact::Catalog(c) => {
                        let newer = self
                            .catalog
                            .get(&c.video_id)
                            .is_none_or(|(_, old)| (&old.order, &old.entry) < (&c.order, &c.entry));
                        if newer {
                            self.catalog.insert(c.video_id, (t, c));
                        }
                    }
                    Fact::Media(m) => self.add_media(t, m),
                    Fact::Playback(p) => playback.push(p),
                }
            }
            self.add_playback(t, playback);
        }
        // A session due at the frontier closes at it, before anything
        // stamped there.
        self.close_until(frontier.saturating_add(1));
        self.frontier = frontier;
        // Every record left is stamped at or after the frontier: one that
        // reaches the log late (below an idle floor) is moved up to it,
        // here and by a start from this snapshot alike.
        for mark in self.marks.values_mut() {
            mark.last = mark.last.max(frontier);
        }
        let longest = self
            .windows
            .trending
            .iter()
            .map(|(_, len)| len.as_millis() as Time)
            .max();
        let keep_from = frontier.saturating_sub(longest.unwrap_or(0));
        self.closed.starts.retain(|(t, _)| *t >= keep_from);
    }

    fn add_media(&mut self, t: Time, m: MediaFact) {
        let media = self.media.entry(m.video_id).or_default();
        media.changes.insert((m.order, m.change.clone()));
        media.duration = None;
        media.events.push((t, m));
    }

    /// Applies one time's playback records, as `accumulate_beside` does:
    /// each session's in their order as values, any record (a duplicate
    /// too) putting its deadline off.
    fn add_playback(&mut self, t: Time, mut records: Vec<PlaybackFact>) {
        records.sort_by_key(|p| (p.session_id, event(p)));
        for p in records {
            let st = self.sessions.entry(p.session_id).or_insert_with(|| OpenSession {
                acc: SessionAccumulator::default(),
                records: Vec::new(),
                deadline: None,
            });
            st.acc.add(&event(&p));
            let deadline = st.acc.total().map(|s| t.saturating_add(self.windows.linger(s)));
            if deadline != st.deadline {
                st.deadline = deadline;
                if let Some(d) = deadline {
                    self.deadlines.entry(d).or_default().push(p.session_id);
                }
            }
            st.records.push((t, p));
        }
    }

    /// Closes every session due before `time`, in deadline order.
    fn close_until(&mut self, time: Time) {
        while let Some(entry) = self.deadlines.first_entry() {
            if *entry.key() >= time {
                break;
            }
            let (at, sids) = entry.remove_entry();
            for sid in sids {
                if self.sessions.get(&sid).is_none_or(|st| st.deadline != Some(at)) {
                    continue;
                }
                let st = self.sessions.remove(&sid).expect("looked up");
                self.fold_closed(sid, st);
            }
        }
    }

    /// Folds a closed session into what closed sessions amount to.
    fn fold_closed(&mut self, sid: Uuid, st: OpenSession) {
        let Some(s) = st.acc.total() else {
            return;
        };
        let v = s.video_id;
        let d = self.media.get_mut(&v).and_then(Media::duration_ms);
        let f = &mut self.closed;
        f.totals.entry(v).or_default().add(&VideoSums::of(s, d));
        match s.user_id {
            Some(u) => {
                *f.viewers.entry((v, u)).or_default() += 1;
                f.history.entry((u, v)).or_default().add(&s.watched(sid, d));
            }
            None => *f.anonymous.entry(v).or_default() += 1,
        }
        *f.startups.entry((v, s.startup_ms.map(startup_bucket))).or_default() += 1;
        if let (Some(d), Some(_)) = (d, s.startup_ms) {
            *f.retention.entry((v, s.retention_bucket(d))).or_default() += 1;
        }
        let latest = f.last_view.entry((v, spread(sid))).or_insert(s.started_ms);
        *latest = (*latest).max(s.started_ms);
        for (_, p) in &st.records {
            if p.beacon == Beacon::Start {
                f.starts.insert((p.logged_at, (p.video_id, sid)));
            }
        }
    }

    /// The snapshot of everything folded so far.
    pub fn snapshot(&self) -> Snapshot {
        fn sorted<K: Ord + Copy, V: Copy>(m: &HashMap<K, V>) -> Vec<(K, V)> {
            let mut v: Vec<(K, V)> = m.iter().map(|(k, v)| (*k, *v)).collect();
            v.sort_by_key(|(k, _)| *k);
            v
        }
        let mut catalog: Vec<(Time, CatalogFact)> = self.catalog.values().cloned().collect();
        catalog.sort();
        let mut media: Vec<(Time, MediaFact)> = self.media.values().flat_map(|m| m.events.iter().cloned()).collect();
        media.sort();
        let mut playback: Vec<(Time, PlaybackFact)> =
            self.sessions.values().flat_map(|s| s.records.iter().cloned()).collect();
        playback.sort();
        let f = &self.closed;
        Snapshot {
            frontier: self.frontier,
            tick: self.tick,
            partitions: self.marks.values().cloned().collect(),
            catalog,
            media,
            playback,
            closed: Closed {
                totals: sorted(&f.totals),
                viewers: sorted(&f.viewers),
                anonymous: sorted(&f.anonymous),
                startups: sorted(&f.startups),
                retention: sorted(&f.retention),
                last_view: sorted(&f.last_view),
                history: sorted(&f.history),
                starts: f.starts.iter().copied().collect(),
            },
        }
    }
}

/// A playback record as the session accumulator takes it.
fn event(p: &PlaybackFact) -> SessionEvent {
    (p.order, p.logged_at, p.video_id, p.user_id, p.beacon.clone())
}

/// `items`, sorted by time, grouped by it.
fn by_time<T>(items: Vec<(Time, T)>) -> Vec<(Time, Vec<T>)> {
    let mut out: Vec<(Time, Vec<T>)> = Vec::new();
    for (t, item) in items {
        match out.last_mut() {
            Some((last, group)) if *last == t => group.push(item),
            _ => out.push((t, vec![item])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;
    use reelflow_ingest::events::{Envelope, PlaybackEvent, PlaybackKind, TopicEvent};

    use super::*;

    fn start(session: Uuid, video: Uuid, offset: u64, logged_ms: i64) -> Record {
        let e = Envelope {
            schema_version: PlaybackEvent::SCHEMA_VERSION,
            event_id: Uuid::from_u128(u128::from(offset) + 1),
            occurred_at: DateTime::from_timestamp_millis(logged_ms).expect("time"),
            event: PlaybackEvent {
                session_id: session,
                video_id: video,
                user_id: None,
                kind: PlaybackKind::SessionStart { player: None },
            },
        };
        Record {
            topic: PlaybackEvent::TOPIC.into(),
            partition: 0,
            offset,
            timestamp_ms: logged_ms,
            key: e.key().into_bytes(),
            value: e.to_bytes(),
        }
    }

    /// A record stamped exactly at its session's deadline starts the next
    /// session, as `accumulate_beside` closes a key before the values at
    /// its deadline. The fold closed only sessions due before the time
    /// of the records it applied, and counted one view where the views
    /// count two.
    #[test]
    fn regression_a_record_at_its_sessions_deadline_starts_the_next_session() {
        let windows = Windows {
            concurrent: Duration::from_millis(100),
            session_idle: Duration::from_millis(100),
            ..Windows::default()
        };
        let (session, video) = (Uuid::from_u128(7), Uuid::from_u128(9));
        let records = [start(session, video, 0, 1_000), start(session, video, 1, 1_100)];
        let mut c = Compactor::new(&windows, 1);
        c.advance(&records, 5_000);
        let s = c.snapshot();
        assert_eq!(s.closed.anonymous, vec![(video, 2)], "two sessions closed");
        assert_eq!(s.closed.totals[0].1.sessions, 2);
    }
}
