//! The jobs a transcoder has read ahead, taken one owner at a time.
//!
//! A transcoder reads its partitions of `reelflow.uploads` in order, and a
//! partition holds many accounts' uploads. Taken in log order, one account
//! that uploads twenty long videos holds every upload queued behind them
//! (a 3 s clip once waited 399 s). So a transcoder reads up to
//! [`LOOKAHEAD`] records ahead and starts, of those waiting, a job of the
//! owner it has served least since its queue was last empty, the oldest
//! of that owner's first.
//!
//! Jobs finish out of log order, and a committed offset says that every
//! record of its partition before it is done: an offset is committed only
//! once every record up to it has finished ([`Outstanding`]), so a
//! transcoder that dies mid-job leaves every unfinished upload to the next
//! member of the group.

use std::collections::{BTreeMap, HashMap, VecDeque};

use uuid::Uuid;

use crate::log::Record;

/// Records a transcoder reads ahead of the job it runs.
pub const LOOKAHEAD: usize = 32;

/// A job waiting: its record and whose upload it is.
#[derive(Debug)]
pub struct Waiting<J> {
    /// The owner of the upload.
    pub owner: Uuid,
    /// What to do.
    pub job: J,
    /// The record it came in.
    pub record: Record,
}

/// Waiting jobs, taken by owner in turn.
#[derive(Debug)]
pub struct FairQueue<J> {
    waiting: VecDeque<Waiting<J>>,
    /// Jobs started per owner since the queue was last empty.
    served: HashMap<Uuid, u64>,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            served: HashMap::new(),
        }
    }
}

impl<J> FairQueue<J> {
    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Adds a job, behind the others of its owner.
    pub fn push(&mut self, waiting: Waiting<J>) {
        self.waiting.push_back(waiting);
    }

    /// The next job: the oldest of the owner served least.
    pub fn pop(&mut self) -> Option<Waiting<J>> {
        let served = &self.served;
        let (at, _) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(i, w)| (served.get(&w.owner).copied().unwrap_or(0), *i))?;
        let next = self.waiting.remove(at)?;
        *self.served.entry(next.owner).or_insert(0) += 1;
        if self.waiting.is_empty() {
            // Caught up: earlier turns no longer count against anyone.
            self.served.clear();
        }
        Some(next)
    }
}

/// Records read but not committed, per partition, and whether each is done.
#[derive(Debug, Default)]
pub struct Outstanding {
    partitions: HashMap<u32, BTreeMap<u64, Option<Record>>>,
}

impl Outstanding {
    /// Notes a record read.
    pub fn read(&mut self, record: &Record) {
        self.partitions
            .entry(record.partition)
            .or_default()
            .insert(record.offset, None);
    }

    /// Marks `record` done; returns the record to commit, if one is now
    /// done with everything before it in its partition.
    pub fn done(&mut self, record: Record) -> Option<Record> {
        let partition = self.partitions.get_mut(&record.partition)?;
        if let Some(slot) = partition.get_mut(&record.offset) {
            *slot = Some(record);
        }
        let mut commit = None;
        while let Some(entry) = partition.first_entry() {
            if entry.get().is_none() {
                break;
            }
            commit = entry.remove();
        }
        commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: u32, offset: u64) -> Record {
        Record {
            topic: "reelflow.uploads".into(),
            partition,
            offset,
            timestamp_ms: 0,
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    #[test]
    fn owners_take_turns() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut queue = FairQueue::default();
        for (i, owner) in [a, a, a, a, b, c, b].into_iter().enumerate() {
            queue.push(Waiting {
                owner,
                job: i,
                record: record(0, i as u64),
            });
        }
        let order: Vec<usize> = std::iter::from_fn(|| queue.pop().map(|w| w.job)).collect();
        assert_eq!(order, [0, 4, 5, 1, 6, 2, 3]);
    }

    #[test]
    fn an_offset_is_committed_once_everything_before_it_is_done() {
        let mut outstanding = Outstanding::default();
        for offset in 0..4 {
            outstanding.read(&record(0, offset));
        }
        outstanding.read(&record(1, 9));
        assert!(outstanding.done(record(0, 2)).is_none(), "0 and 1 still run");
        assert_eq!(outstanding.done(record(0, 0)).map(|r| r.offset), Some(0));
        assert_eq!(outstanding.done(record(0, 1)).map(|r| r.offset), Some(2));
        assert_eq!(outstanding.done(record(1, 9)).map(|r| r.offset), Some(9));
        assert_eq!(outstanding.done(record(0, 3)).map(|r| r.offset), Some(3));
    }
}
