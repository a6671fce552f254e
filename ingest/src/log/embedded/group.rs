//! Consumer groups of the embedded log: the members of a group share a
//! topic's partitions (partition p goes to the member at index p mod n, in
//! join order) and commit offsets manually; commits are stored durably so a
//! restarted group resumes where it left off. When a member joins or leaves,
//! every member's assignment changes and each newly assigned partition is
//! read from the group's committed offset: records handled but not committed
//! are delivered again (at least once, as in Kafka).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Topic;
use super::partition::Cursor;
use super::segment;
use crate::log::{GroupConsumer, LogError, LogResult, Record};

pub(crate) struct Group {
    path: PathBuf,
    state: Mutex<GroupState>,
}

struct GroupState {
    /// Member ids in join order.
    members: Vec<u64>,
    next_member: u64,
    /// Bumped whenever membership changes.
    generation: u64,
    /// Partition → next offset to read.
    committed: BTreeMap<u32, u64>,
}

impl Group {
    fn load(topic: &Topic, name: &str) -> LogResult<Self> {
        let dir = topic.dir.join("groups");
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{name}.json"));
        let committed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LogError::Corrupt(format!("{} is not valid: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(LogError::io(format!("reading {}", path.display()), e)),
        };
        Ok(Self {
            path,
            state: Mutex::new(GroupState {
                members: Vec::new(),
                next_member: 0,
                generation: 0,
                committed,
            }),
        })
    }
}

/// A member of an embedded consumer group. Leaves the group when dropped.
pub struct EmbeddedConsumer {
    topic: Arc<Topic>,
    group: Arc<Group>,
    member: u64,
    generation: u64,
    cursors: Vec<Cursor>,
    next_cursor: usize,
    appended: tokio::sync::watch::Receiver<u64>,
    pending: std::collections::VecDeque<Record>,
}

impl EmbeddedConsumer {
    pub(crate) fn join(topic: Arc<Topic>, group_name: &str) -> LogResult<Self> {
        crate::log::validate_topic(group_name).map_err(|_| {
            LogError::Invalid(format!(
                "group name {group_name:?} must be letters, digits, '.', '_' and '-'"
            ))
        })?;
        let group = {
            let mut groups = topic.groups.lock().expect("groups lock");
            match groups.get(group_name) {
                Some(g) => Arc::clone(g),
                None => {
                    let g = Arc::new(Group::load(&topic, group_name)?);
                    groups.insert(group_name.to_string(), Arc::clone(&g));
                    g
                }
            }
        };
        let member = {
            let mut s = group.state.lock().expect("group lock");
            let id = s.next_member;
            s.next_member += 1;
            s.members.push(id);
            s.generation += 1;
            id
        };
        let appended = topic.appended.subscribe();
        Ok(Self {
            topic,
            group,
            member,
            generation: u64::MAX,
            cursors: Vec::new(),
            next_cursor: 0,
            appended,
            pending: Default::default(),
        })
    }

    /// Partitions this member reads now.
    pub fn assignment(&self) -> Vec<u32> {
        self.cursors.iter().map(|c| c.partition()).collect()
    }

    /// Re-reads the assignment if membership changed since the last call.
    fn rebalance_if_needed(&mut self) -> LogResult<()> {
        let s = self.group.state.lock().expect("group lock");
        if s.generation == self.generation {
            return Ok(());
        }
        let n = s.members.len() as u32;
        let me = s
            .members
            .iter()
            .position(|&m| m == self.member)
            .expect("a live member is in its group") as u32;
        let partitions = self.topic.partitions.len() as u32;
        self.cursors = (0..partitions)
            .filter(|p| p % n == me)
            .map(|p| Cursor::new(&self.topic, p, s.committed.get(&p).copied().unwrap_or(0)))
            .collect::<LogResult<_>>()?;
        self.pending.clear();
        self.generation = s.generation;
        Ok(())
    }

    fn read_now(&mut self) -> LogResult<()> {
        let n = self.cursors.len();
        let mut out = Vec::new();
        for i in 0..n {
            let idx = (self.next_cursor + i) % n;
            if self.cursors[idx].read_available(64, &mut out)? > 0 {
                self.next_cursor = (idx + 1) % n;
                break;
            }
        }
        self.pending.extend(out);
        Ok(())
    }
}

impl GroupConsumer for EmbeddedConsumer {
    async fn next(&mut self, timeout: Duration) -> LogResult<Option<Record>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.rebalance_if_needed()?;
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            self.appended.borrow_and_update();
            self.read_now()?;
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            // Wake on appends, and now and then to notice rebalances.
            let wait = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            if tokio::time::timeout_at(wait, self.appended.changed()).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Ok(None);
            }
        }
    }

    async fn commit(&mut self, record: &Record) -> LogResult<()> {
        if record.topic != self.topic.name {
            return Err(LogError::Invalid(format!(
                "record of topic {:?} committed to a consumer of {:?}",
                record.topic, self.topic.name
            )));
        }
        let group = Arc::clone(&self.group);
        let (partition, next) = (record.partition, record.offset + 1);
        tokio::task::spawn_blocking(move || {
            // The file is written under the state lock, so commits of several
            // members never overwrite a newer file with an older snapshot.
            let mut s = group.state.lock().expect("group lock");
            let entry = s.committed.entry(partition).or_insert(0);
            *entry = (*entry).max(next);
            let bytes = serde_json::to_vec(&s.committed).expect("offsets serialise");
            segment::write_atomically(&group.path, &bytes)
        })
        .await
        .map_err(|e| LogError::Invalid(format!("commit task panicked: {e}")))?
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        if let Ok(mut s) = self.group.state.lock() {
            s.members.retain(|&m| m != self.member);
            s.generation += 1;
        }
    }
}
