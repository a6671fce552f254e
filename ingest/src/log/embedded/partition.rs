//! One partition of a topic: its segments, the appender with group commit,
//! and cursors that read it from an offset.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::segment::{self, INDEX_INTERVAL, ScanEnd, SegmentMeta, SegmentReader};
use super::{EmbeddedOptions, FsyncPolicy, Topic, record};
use crate::log::{LogError, LogResult, PartitionReader, Record};

struct Writer {
    file: Arc<File>,
    next_offset: u64,
    last_timestamp_ms: i64,
    buf: Vec<u8>,
}

pub(crate) struct Partition {
    id: u32,
    dir: PathBuf,
    options: EmbeddedOptions,
    writer: Mutex<Writer>,
    /// Segments in offset order; the last one is being appended to.
    segments: RwLock<Vec<SegmentMeta>>,
    /// Serialises fsyncs; whoever holds it syncs for everyone waiting.
    sync_lock: Mutex<()>,
    /// One past the last durable (and so readable) offset.
    durable: AtomicU64,
}

impl Partition {
    /// Opens the partition in `dir`, recovering it as the module doc says.
    pub(crate) fn open(dir: PathBuf, id: u32, options: EmbeddedOptions) -> LogResult<Self> {
        fs::create_dir_all(&dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        let mut listed = segment::list(&dir)?;
        if listed.is_empty() {
            let path = dir.join(segment::file_name(0));
            File::create(&path).map_err(|e| LogError::io(format!("creating {}", path.display()), e))?;
            segment::sync_dir(&dir)?;
            listed.push((0, path));
        }
        let mut segments = Vec::with_capacity(listed.len());
        let last = listed.len() - 1;
        for (i, (base, path)) in listed.iter().enumerate() {
            if i != last
                && let Some(meta) = segment::read_index(*base, path)
            {
                segments.push(meta);
                continue;
            }
            let (meta, end) = segment::scan(*base, path)?;
            if let Some(prev) = segments.last().map(|s: &SegmentMeta| s.end_offset)
                && prev != *base
            {
                return Err(LogError::Corrupt(format!(
                    "{} starts at offset {base} but the segment before it ends at {prev}",
                    path.display()
                )));
            }
            if let ScanEnd::Invalid { reason } = end {
                if i != last {
                    return Err(LogError::Corrupt(format!(
                        "sealed segment {} is damaged at byte {}: {reason}",
                        path.display(),
                        meta.len
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = meta.len,
                    reason,
                    "truncating a torn write at the end of the log"
                );
                segment::truncate(path, meta.len)?;
            } else if i != last
                && let Err(e) = segment::write_index(&meta)
            {
                tracing::warn!(segment = %path.display(), error = %e, "cannot write a sealed segment's index; the next open scans it again");
            }
            segments.push(meta);
        }
        let active = segments.last().expect("at least one segment");
        let file = File::options()
            .append(true)
            .open(&active.path)
            .map_err(|e| LogError::io(format!("opening {}", active.path.display()), e))?;
        let next_offset = active.end_offset;
        let last_timestamp_ms = segments
            .iter()
            .rev()
            .map(|s| s.last_timestamp_ms)
            .find(|&t| t != i64::MIN)
            .unwrap_or(i64::MIN);
        Ok(Self {
            id,
            dir,
            options,
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                next_offset,
                last_timestamp_ms,
                buf: Vec::new(),
            }),
            segments: RwLock::new(segments),
            sync_lock: Mutex::new(()),
            durable: AtomicU64::new(next_offset),
        })
    }

    /// The first offset still held: records before it have expired.
    pub(crate) fn low_watermark(&self) -> u64 {
        let segments = self.segments.read().expect("segments lock");
        segments
            .first()
            .map_or_else(|| self.high_watermark(), |s| s.base_offset)
    }

    /// Deletes the sealed segments that hold only offsets before `offset`
    /// (never the one being appended to) and returns the new low
    /// watermark. A reader already past them is not disturbed.
    pub(crate) fn expire_before(&self, offset: u64) -> LogResult<u64> {
        let expired: Vec<SegmentMeta> = {
            let mut segments = self.segments.write().expect("segments lock");
            let sealed = segments.len().saturating_sub(1);
            let n = segments[..sealed].iter().take_while(|s| s.end_offset <= offset).count();
            segments.drain(..n).collect()
        };
        for s in &expired {
            fs::remove_file(&s.path).map_err(|e| LogError::io(format!("deleting {}", s.path.display()), e))?;
            let _ = fs::remove_file(segment::index_path(&s.path));
        }
        if !expired.is_empty() {
            segment::sync_dir(&self.dir)?;
        }
        Ok(self.low_watermark())
    }

    /// One past the last readable offset.
    pub(crate) fn high_watermark(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Appends records in order and returns the first one's offset once all
    /// are durable (per the fsync policy).
    pub(crate) fn append(&self, records: &[(&[u8], &[u8])]) -> LogResult<u64> {
        let (first, end) = {
            let mut w = self.writer.lock().expect("writer lock");
            let now = self.options.clock.now_ms();
            // Log time never goes backwards within a partition, even if the
            // clock does.
            let ts = now.max(w.last_timestamp_ms);
            let first = w.next_offset;
            let mut buf = std::mem::take(&mut w.buf);
            buf.clear();
            let mut positions = Vec::with_capacity(records.len());
            for (i, (key, value)) in records.iter().enumerate() {
                if key.len() + value.len() + record::BODY_FIXED_LEN > record::MAX_BODY_LEN {
                    w.buf = buf;
                    return Err(LogError::Invalid(format!(
                        "record of {} bytes is larger than the {} byte limit",
                        key.len() + value.len(),
                        record::MAX_BODY_LEN
                    )));
                }
                positions.push(buf.len() as u64);
                record::encode(&mut buf, first + i as u64, ts, key, value);
            }
            let write = (&*w.file).write_all(&buf);
            if let Err(e) = write {
                // A partial write would leave a torn record that later appends
                // would bury: cut the segment back to where it was.
                let segments = self.segments.read().expect("segments lock");
                let active = segments.last().expect("active segment");
                let _ = w.file.set_len(active.len);
                w.buf = buf;
                return Err(LogError::io(format!("appending to {}", active.path.display()), e));
            }
            let end = first + records.len() as u64;
            {
                let mut segments = self.segments.write().expect("segments lock");
                let active = segments.last_mut().expect("active segment");
                for (i, pos) in positions.iter().enumerate() {
                    let at = active.len + pos;
                    if active.index.last().is_none_or(|&(_, p)| at - p >= INDEX_INTERVAL) {
                        active.index.push((first + i as u64, at));
                    }
                }
                active.len += buf.len() as u64;
                active.end_offset = end;
                active.last_timestamp_ms = ts;
            }
            w.next_offset = end;
            w.last_timestamp_ms = ts;
            w.buf = buf;
            self.roll_if_full(&mut w)?;
            (first, end)
        };
        self.make_durable(end)?;
        Ok(first)
    }

    /// Seals the active segment once it is past the size limit.
    fn roll_if_full(&self, w: &mut Writer) -> LogResult<()> {
        let full = self
            .segments
            .read()
            .expect("segments lock")
            .last()
            .expect("active segment")
            .len
            >= self.options.segment_bytes;
        if !full {
            return Ok(());
        }
        // The sealed segment must be durable before anything lands after it.
        w.file
            .sync_data()
            .map_err(|e| LogError::io(format!("syncing a segment of {}", self.dir.display()), e))?;
        let path = self.dir.join(segment::file_name(w.next_offset));
        let file = File::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io(format!("creating {}", path.display()), e))?;
        segment::sync_dir(&self.dir)?;
        w.file = Arc::new(file);
        let sealed = self.segments.read().expect("segments lock").last().cloned();
        if let Some(sealed) = sealed
            && let Err(e) = segment::write_index(&sealed)
        {
            tracing::warn!(segment = %sealed.path.display(), error = %e, "cannot write a sealed segment's index; the next open scans it");
        }
        self.segments.write().expect("segments lock").push(SegmentMeta {
            base_offset: w.next_offset,
            path,
            len: 0,
            end_offset: w.next_offset,
            last_timestamp_ms: w.last_timestamp_ms,
            index: Vec::new(),
        });
        Ok(())
    }

    /// Returns once every offset below `end` is durable, syncing if nobody
    /// else already did (group commit).
    fn make_durable(&self, end: u64) -> LogResult<()> {
        if self.options.fsync == FsyncPolicy::Never {
            self.durable.fetch_max(end, Ordering::AcqRel);
            return Ok(());
        }
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let _sync = self.sync_lock.lock().expect("sync lock");
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let (file, written) = {
            let w = self.writer.lock().expect("writer lock");
            (Arc::clone(&w.file), w.next_offset)
        };
        // Older segments were synced when they were sealed, so syncing the
        // active one covers everything written so far.
        file.sync_data()
            .map_err(|e| LogError::io(format!("syncing partition {}", self.dir.display()), e))?;
        self.durable.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }

    /// The segment holding `offset` and where in it to start looking.
    fn locate(&self, offset: u64) -> Option<(PathBuf, u64, u64)> {
        let segments = self.segments.read().expect("segments lock");
        let i = segments.partition_point(|s| s.base_offset <= offset).checked_sub(1)?;
        let s = &segments[i];
        Some((s.path.clone(), s.seek_hint(offset), s.end_offset))
    }
}

/// Reads one partition sequentially from an offset, up to the high watermark.
pub(crate) struct Cursor {
    partition: Arc<Partition>,
    topic: String,
    /// The next offset to return.
    pub(crate) next_offset: u64,
    open: Option<OpenSegment>,
}

struct OpenSegment {
    path: PathBuf,
    reader: SegmentReader,
    end_offset: u64,
}

impl Cursor {
    pub(crate) fn new(topic: &Topic, partition: u32, offset: u64) -> LogResult<Self> {
        Ok(Self {
            partition: Arc::clone(topic.partition(partition)?),
            topic: topic.name.clone(),
            next_offset: offset,
            open: None,
        })
    }

    pub(crate) fn partition(&self) -> u32 {
        self.partition.id
    }

    /// Reads up to `max` records that are available now.
    pub(crate) fn read_available(&mut self, max: usize, out: &mut Vec<Record>) -> LogResult<usize> {
        let hw = self.partition.high_watermark();
        let mut n = 0;
        while n < max && self.next_offset < hw {
            let needs_open = match &self.open {
                None => true,
                // The segment may have grown since it was opened; only move
                // on once the wanted offset is past what it held then.
                Some(open) => self.next_offset >= open.end_offset && !self.refresh_end(),
            };
            if needs_open {
                let Some((path, pos, end_offset)) = self.partition.locate(self.next_offset) else {
                    return Err(LogError::Corrupt(format!(
                        "offset {} of {}/{} is in no segment",
                        self.next_offset, self.topic, self.partition.id
                    )));
                };
                let reader = SegmentReader::open(&path, pos)?;
                self.open = Some(OpenSegment {
                    path,
                    reader,
                    end_offset,
                });
            }
            let open = self.open.as_mut().expect("segment opened above");
            let framed = open.reader.next(&open.path)?;
            if framed.offset < self.next_offset {
                continue; // scanning forward from the sparse index entry
            }
            if framed.offset != self.next_offset {
                return Err(LogError::Corrupt(format!(
                    "{} holds offset {} where {} was expected",
                    open.path.display(),
                    framed.offset,
                    self.next_offset
                )));
            }
            out.push(Record {
                topic: self.topic.clone(),
                partition: self.partition.id,
                offset: framed.offset,
                timestamp_ms: framed.timestamp_ms,
                key: framed.key,
                value: framed.value,
            });
            self.next_offset += 1;
            n += 1;
        }
        Ok(n)
    }

    /// Updates the open segment's end from the segment table; true if the
    /// wanted offset is now inside it.
    fn refresh_end(&mut self) -> bool {
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        let segments = self.partition.segments.read().expect("segments lock");
        if let Some(s) = segments.iter().rev().find(|s| s.path == open.path) {
            open.end_offset = s.end_offset;
        }
        self.next_offset < open.end_offset
    }
}

/// An [`EmbeddedLog`](super::EmbeddedLog) reader of assigned partitions.
pub struct EmbeddedReader {
    cursors: Vec<Cursor>,
    appended: tokio::sync::watch::Receiver<u64>,
    /// Round-robin start, so one busy partition cannot starve the others.
    next_cursor: usize,
}

impl EmbeddedReader {
    pub(crate) fn new(topic: Arc<Topic>, assignment: &[(u32, u64)]) -> LogResult<Self> {
        let cursors = assignment
            .iter()
            .map(|&(p, offset)| Cursor::new(&topic, p, offset))
            .collect::<LogResult<Vec<_>>>()?;
        Ok(Self {
            cursors,
            appended: topic.appended.subscribe(),
            next_cursor: 0,
        })
    }

    fn read_now(&mut self, max: usize) -> LogResult<Vec<Record>> {
        let mut out = Vec::new();
        let n = self.cursors.len();
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let idx = (self.next_cursor + i) % n;
            let room = max - out.len();
            self.cursors[idx].read_available(room, &mut out)?;
        }
        if n > 0 {
            self.next_cursor = (self.next_cursor + 1) % n;
        }
        Ok(out)
    }
}

impl PartitionReader for EmbeddedReader {
    async fn poll(&mut self, max: usize, timeout: Duration) -> LogResult<Vec<Record>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Mark the current append count as seen *before* reading, so an
            // append that lands after the read wakes the wait below.
            self.appended.borrow_and_update();
            let out = self.read_now(max)?;
            if !out.is_empty() {
                return Ok(out);
            }
            match tokio::time::timeout_at(deadline, self.appended.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }
}
