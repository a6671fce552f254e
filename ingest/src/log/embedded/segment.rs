//! Segment files: scanning them on open (the recovery of the module doc),
//! the index file a sealed segment gets, and the small file helpers the
//! log needs.
//!
//! A sealed segment never changes, so what a scan learns of it (length,
//! offsets, last log time, sparse index) is written beside it as
//! `<base>.index`, with a CRC. Opening the log then reads those small files
//! instead of every sealed byte, so a start does not grow with the log's
//! history: only the active segment, the one a crash can tear, is scanned.
//! An index that is missing, damaged or describes another length than the
//! segment's is ignored and the segment scanned (and the index written
//! again). Damage inside a sealed segment is still never hidden: a reader
//! checks every record's CRC and fails with an error naming the file.

use std::fs::{self, File};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{self, FrameError, HEADER_LEN};
use crate::log::{LogError, LogResult};

/// Every this many bytes a segment's sparse index gets an entry.
pub const INDEX_INTERVAL: u64 = 16 * 1024;

/// What is known of one segment after scanning it.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    /// First offset the segment holds (also its file name).
    pub base_offset: u64,
    /// Path of the file.
    pub path: PathBuf,
    /// Valid length in bytes.
    pub len: u64,
    /// One past the last offset it holds.
    pub end_offset: u64,
    /// Log time of its last record (`i64::MIN` if empty).
    pub last_timestamp_ms: i64,
    /// Sparse index: (offset, byte position) pairs, ascending.
    pub index: Vec<(u64, u64)>,
}

impl SegmentMeta {
    /// The byte position to start scanning from to find `offset`.
    pub fn seek_hint(&self, offset: u64) -> u64 {
        match self.index.partition_point(|&(o, _)| o <= offset) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }
}

/// File name of the segment starting at `base_offset`.
pub fn file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

/// Path of the index file of the segment at `path`.
pub fn index_path(path: &Path) -> PathBuf {
    path.with_extension("index")
}

const INDEX_MAGIC: &[u8; 8] = b"RFSEGIX1";

/// Writes `meta` as the index file of its (sealed) segment.
pub fn write_index(meta: &SegmentMeta) -> LogResult<()> {
    let mut out = Vec::with_capacity(48 + meta.index.len() * 16);
    out.extend_from_slice(INDEX_MAGIC);
    for v in [
        meta.base_offset,
        meta.len,
        meta.end_offset,
        meta.last_timestamp_ms as u64,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(meta.index.len() as u64).to_le_bytes());
    for (offset, pos) in &meta.index {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    write_atomically(&index_path(&meta.path), &out)
}

/// The index file of the sealed segment at `path` starting at
/// `base_offset`, if there is one that is intact and describes the
/// segment's present length.
pub fn read_index(base_offset: u64, path: &Path) -> Option<SegmentMeta> {
    let bytes = fs::read(index_path(path)).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) || !body.starts_with(INDEX_MAGIC) {
        return None;
    }
    let words: Vec<u64> = body[INDEX_MAGIC.len()..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let [base, len, end_offset, last, n, rest @ ..] = words.as_slice() else {
        return None;
    };
    let file_len = fs::metadata(path).ok()?.len();
    if *base != base_offset || *len != file_len || rest.len() as u64 != n * 2 {
        return None;
    }
    Some(SegmentMeta {
        base_offset,
        path: path.to_path_buf(),
        len: *len,
        end_offset: *end_offset,
        last_timestamp_ms: *last as i64,
        index: rest.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
    })
}

/// Segments in `dir`, sorted by base offset.
pub fn list(dir: &Path) -> LogResult<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".log").and_then(|s| s.parse::<u64>().ok()) {
            found.push((base, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// How a scan ended.
#[derive(Debug)]
pub enum ScanEnd {
    /// Every byte was a valid record.
    Clean,
    /// An invalid record starts at `meta.len`; `reason` says why.
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

/// Reads a whole segment, checking every frame, building its sparse index.
pub fn scan(base_offset: u64, path: &Path) -> LogResult<(SegmentMeta, ScanEnd)> {
    let file = File::open(path).map_err(|e| LogError::io(format!("opening {}", path.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| LogError::io(format!("stat {}", path.display()), e))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut meta = SegmentMeta {
        base_offset,
        path: path.to_path_buf(),
        len: 0,
        end_offset: base_offset,
        last_timestamp_ms: i64::MIN,
        index: Vec::new(),
    };
    let mut last_indexed: Option<u64> = None;
    let mut frame = Vec::new();
    loop {
        if meta.len == file_len {
            return Ok((meta, ScanEnd::Clean));
        }
        let invalid = |reason: String| Ok((meta.clone(), ScanEnd::Invalid { reason }));
        let mut header = [0u8; HEADER_LEN];
        if file_len - meta.len < HEADER_LEN as u64 {
            return invalid(format!(
                "{} trailing bytes, less than a record header",
                file_len - meta.len
            ));
        }
        reader
            .read_exact(&mut header)
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
        let len = match record::frame_len(&header) {
            Ok(len) => len,
            Err(e) => return invalid(format!("{e:?}")),
        };
        if file_len - meta.len < len as u64 {
            return invalid(format!("record of {len} bytes but only {} left", file_len - meta.len));
        }
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(len, 0);
        reader
            .read_exact(&mut frame[HEADER_LEN..])
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
        let decoded = match record::decode(&frame) {
            Ok(d) => d,
            Err(FrameError::BadCrc) => return invalid("CRC mismatch".into()),
            Err(e) => return invalid(format!("{e:?}")),
        };
        if decoded.offset != meta.end_offset {
            return invalid(format!(
                "record has offset {} where {} was expected",
                decoded.offset, meta.end_offset
            ));
        }
        if last_indexed.is_none_or(|pos| meta.len - pos >= INDEX_INTERVAL) {
            meta.index.push((decoded.offset, meta.len));
            last_indexed = Some(meta.len);
        }
        meta.len += len as u64;
        meta.end_offset += 1;
        meta.last_timestamp_ms = decoded.timestamp_ms;
    }
}

/// Cuts a segment back to `len` bytes and makes that durable.
pub fn truncate(path: &Path, len: u64) -> LogResult<()> {
    let file = File::options()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io(format!("opening {}", path.display()), e))?;
    file.set_len(len)
        .map_err(|e| LogError::io(format!("truncating {}", path.display()), e))?;
    file.sync_all()
        .map_err(|e| LogError::io(format!("syncing {}", path.display()), e))
}

/// Writes `bytes` to `path` via a temporary file and a rename, syncing both
/// the file and its directory, so a reader sees the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> LogResult<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| LogError::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(bytes)
        .map_err(|e| LogError::io(format!("writing {}", tmp.display()), e))?;
    file.sync_all()
        .map_err(|e| LogError::io(format!("syncing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| LogError::io(format!("renaming {} into place", tmp.display()), e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries (new files, renames) durable.
pub fn sync_dir(dir: &Path) -> LogResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(format!("syncing directory {}", dir.display()), e))
}

/// A sequential reader over one segment from a byte position.
pub struct SegmentReader {
    reader: BufReader<File>,
    /// Byte position of the next frame.
    pub pos: u64,
    frame: Vec<u8>,
}

impl SegmentReader {
    /// Opens `path` positioned at byte `pos`.
    pub fn open(path: &Path, pos: u64) -> LogResult<Self> {
        let mut file = File::open(path).map_err(|e| LogError::io(format!("opening {}", path.display()), e))?;
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| LogError::io(format!("seeking {}", path.display()), e))?;
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, file),
            pos,
            frame: Vec::new(),
        })
    }

    /// Reads the next frame, which the caller knows is complete (it lies
    /// below the high watermark).
    pub fn next(&mut self, path: &Path) -> LogResult<record::Framed> {
        let mut header = [0u8; HEADER_LEN];
        self.reader
            .read_exact(&mut header)
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
        let len = record::frame_len(&header)
            .map_err(|e| LogError::Corrupt(format!("{} at byte {}: {e:?}", path.display(), self.pos)))?;
        self.frame.clear();
        self.frame.extend_from_slice(&header);
        self.frame.resize(len, 0);
        self.reader
            .read_exact(&mut self.frame[HEADER_LEN..])
            .map_err(|e| LogError::io(format!("reading {}", path.display()), e))?;
        let framed = record::decode(&self.frame)
            .map_err(|e| LogError::Corrupt(format!("{} at byte {}: {e:?}", path.display(), self.pos)))?;
        self.pos += len as u64;
        Ok(framed)
    }
}
