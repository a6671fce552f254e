//! Snapshots in object storage (S3 or the local directory).
//!
//! A snapshot is a directory `snapshots/<sequence>/`: one Arrow IPC file
//! per part (`catalog.arrow`, `viewers.arrow`, …), then `manifest.json`,
//! written last. Only a snapshot with its manifest exists: one whose
//! writer died before the manifest (a SIGKILL, a full bucket) is never
//! loaded, and its parts are deleted with the next prune. The manifest
//! names each part's size and CRC-32, so a part damaged or replaced since
//! is refused too, and the snapshot before it is taken instead.
//!
//! The manifest carries a format version: a binary refuses a snapshot of
//! a version newer than it reads, with an error saying so, rather than
//! misread it. It also carries the windows and tick the snapshot was
//! folded with: a snapshot folded with other windows (another
//! `session_idle`, say) closed other sessions, and is not loaded.

use std::io::Cursor;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, UnionFields};
use reelflow_ingest::storage::{AnyStore, ObjectKey, ObjectStore, StorageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_arrow::schema::{SchemaLike, TracingOptions};

use super::{Closed, PartitionMark, Snapshot};
use crate::time::{Time, now_ms};
use crate::views::Windows;

/// The snapshot format this binary writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Where snapshots live in the object store.
const PREFIX: &str = "snapshots/";

/// Rows per Arrow record batch.
const BATCH_ROWS: usize = 65_536;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The object store failed.
    #[error("object storage: {0}")]
    Storage(#[from] StorageError),
    /// A part could not be encoded or decoded.
    #[error("snapshot {sequence}, part {part}: {reason}")]
    Part {
        /// The snapshot.
        sequence: u64,
        /// The part.
        part: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The manifest is not one this binary can read.
    #[error("snapshot {sequence}: {reason}")]
    Manifest {
        /// The snapshot.
        sequence: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the log to fold it failed.
    #[error("reading the log: {0}")]
    Log(#[from] reelflow_ingest::log::LogError),
    /// Written by a newer Reelflow.
    #[error(
        "snapshot {sequence} is in format version {version}, and this binary reads up to version {FORMAT_VERSION}: \
         it was written by a newer Reelflow. Run that version, or start without snapshots (dataflow.snapshots = \
         false) to rebuild the views from the log"
    )]
    Newer {
        /// The snapshot.
        sequence: u64,
        /// Its format version.
        version: u32,
    },
    /// The fold panicked on its blocking thread and took the writer's
    /// state with it (a bug); the process must start again.
    #[error("the snapshot writer lost its state to a failed fold; restart the process")]
    Lost,
}

/// The windows a snapshot was folded with, as the manifest records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldedWith {
    /// `concurrent_viewers`' window, ms.
    pub concurrent_ms: u64,
    /// How long a session stays open without records, ms.
    pub session_idle_ms: u64,
    /// Trending windows by name, ms.
    pub trending_ms: Vec<(String, u64)>,
    /// The tick stamps were rounded to, ms.
    pub tick_ms: Time,
}

impl FoldedWith {
    /// What `windows` and `tick_ms` fold with.
    pub fn of(windows: &Windows, tick_ms: Time) -> Self {
        Self {
            concurrent_ms: windows.concurrent.as_millis() as u64,
            session_idle_ms: windows.session_idle.as_millis() as u64,
            trending_ms: windows
                .trending
                .iter()
                .map(|(n, d)| (n.clone(), d.as_millis() as u64))
                .collect(),
            tick_ms,
        }
    }
}

/// One part's file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// Which part.
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// CRC-32 of its bytes.
    pub crc32: u32,
}

/// What a complete snapshot says of itself: written last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format of the parts and of this manifest.
    pub format_version: u32,
    /// Increases with each snapshot.
    pub sequence: u64,
    /// Every record stamped before it is covered.
    pub frontier: Time,
    /// When it was written, ms since the epoch.
    pub written_at_ms: u64,
    /// What it was folded with.
    pub folded_with: FoldedWith,
    /// Where each partition was left.
    pub partitions: Vec<PartitionMark>,
    /// Its parts.
    pub parts: Vec<PartFile>,
}

impl Manifest {
    /// Bytes of all its parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// The snapshots of one object store.
#[derive(Clone)]
pub struct SnapshotStore {
    store: Arc<AnyStore>,
}

/// Every part of `snapshot` as Arrow IPC: (name, rows, bytes).
type Encoded = Vec<(&'static str, u64, Vec<u8>)>;

fn encode_parts(snapshot: &Snapshot) -> Result<Encoded, (&'static str, String)> {
    fn one<T: Serialize>(out: &mut Encoded, part: &'static str, rows: &[T]) -> Result<(), (&'static str, String)> {
        out.push((part, rows.len() as u64, encode(rows).map_err(|reason| (part, reason))?));
        Ok(())
    }
    let mut out = Vec::new();
    let c = &snapshot.closed;
    one(&mut out, "catalog", &snapshot.catalog)?;
    one(&mut out, "media", &snapshot.media)?;
    one(&mut out, "playback", &snapshot.playback)?;
    one(&mut out, "totals", &c.totals)?;
    one(&mut out, "viewers", &c.viewers)?;
    one(&mut out, "anonymous", &c.anonymous)?;
    one(&mut out, "startups", &c.startups)?;
    one(&mut out, "retention", &c.retention)?;
    one(&mut out, "last_view", &c.last_view)?;
    one(&mut out, "history", &c.history)?;
    one(&mut out, "starts", &c.starts)?;
    Ok(out)
}

fn key(sequence: u64, file: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::parse(&format!("{PREFIX}{sequence:020}/{file}"))
}

fn manifest_key(sequence: u64) -> Result<ObjectKey, StorageError> {
    key(sequence, "manifest.json")
}

/// The sequence a snapshot object's key is under.
fn sequence_of(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (seq, file) = rest.split_once('/')?;
    Some((seq.parse().ok()?, file))
}

impl SnapshotStore {
    /// The snapshots in `store`.
    pub fn new(store: Arc<AnyStore>) -> Self {
        Self { store }
    }

    /// The complete snapshots, newest first (a manifest that does not
    /// parse is skipped, and logged). A snapshot of a newer format is an
    /// error, so a rollback never quietly starts from an older one.
    pub async fn manifests(&self) -> Result<Vec<Manifest>, SnapshotError> {
        let mut sequences: Vec<u64> = self
            .store
            .list(PREFIX)
            .await?
            .iter()
            .filter_map(|o| sequence_of(&o.key))
            .filter(|(_, file)| *file == "manifest.json")
            .map(|(s, _)| s)
            .collect();
        sequences.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for sequence in sequences {
            match self.manifest(sequence).await {
                Ok(m) => out.push(m),
                // Never passed over: the views would go back in time.
                Err(e @ SnapshotError::Newer { .. }) => return Err(e),
                Err(e) => tracing::warn!(sequence, error = %e, "skipping a snapshot whose manifest cannot be read"),
            }
        }
        Ok(out)
    }

    async fn manifest(&self, sequence: u64) -> Result<Manifest, SnapshotError> {
        let bytes = self.store.get(&manifest_key(sequence)?, None).await?.collect().await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Manifest {
            sequence,
            reason: format!("not JSON: {e}"),
        })?;
        let version = value.get("format_version").and_then(serde_json::Value::as_u64);
        match version {
            Some(v) if v > u64::from(FORMAT_VERSION) => {
                return Err(SnapshotError::Newer {
                    sequence,
                    version: v as u32,
                });
            }
            None => {
                return Err(SnapshotError::Manifest {
                    sequence,
                    reason: "no format_version".into(),
                });
            }
            _ => {}
        }
        serde_json::from_value(value).map_err(|e| SnapshotError::Manifest {
            sequence,
            reason: e.to_string(),
        })
    }

    /// The newest complete snapshot folded `with` these windows, loaded.
    /// A snapshot of a newer format is an error; one folded otherwise, or
    /// with a damaged part, is passed over (and logged) for the one before.
    pub async fn latest(&self, with: &FoldedWith) -> Result<Option<(Manifest, Snapshot)>, SnapshotError> {
        for manifest in self.manifests().await? {
            if &manifest.folded_with != with {
                tracing::warn!(
                    sequence = manifest.sequence,
                    "passing over a snapshot folded with other windows or tick than configured now"
                );
                continue;
            }
            match self.load(&manifest).await {
                Ok(s) => return Ok(Some((manifest, s))),
                Err(e) => tracing::warn!(sequence = manifest.sequence, error = %e, "passing over a damaged snapshot"),
            }
        }
        Ok(None)
    }

    /// Loads the snapshot `manifest` describes, checking every part.
    pub async fn load(&self, manifest: &Manifest) -> Result<Snapshot, SnapshotError> {
        let parts = Parts { store: self, manifest };
        Ok(Snapshot {
            frontier: manifest.frontier,
            tick: manifest.folded_with.tick_ms,
            partitions: manifest.partitions.clone(),
            catalog: parts.read("catalog").await?,
            media: parts.read("media").await?,
            playback: parts.read("playback").await?,
            closed: Closed {
                totals: parts.read("totals").await?,
                viewers: parts.read("viewers").await?,
                anonymous: parts.read("anonymous").await?,
                startups: parts.read("startups").await?,
                retention: parts.read("retention").await?,
                last_view: parts.read("last_view").await?,
                history: parts.read("history").await?,
                starts: parts.read("starts").await?,
            },
        })
    }

    /// Writes `snapshot`, folded `with` these windows, as the next
    /// sequence: every part, then the manifest.
    pub async fn write(&self, snapshot: Arc<Snapshot>, with: FoldedWith) -> Result<Manifest, SnapshotError> {
        let sequence = self.next_sequence().await?;
        // Encoding takes seconds for a large state: off the runtime.
        let encoded = {
            let snapshot = Arc::clone(&snapshot);
            tokio::task::spawn_blocking(move || encode_parts(&snapshot))
                .await
                .map_err(|_| SnapshotError::Lost)?
                .map_err(|(part, reason)| SnapshotError::Part { sequence, part, reason })?
        };
        let mut parts = Vec::new();
        for (part, rows, bytes) in encoded {
            self.store
                .put_bytes(&key(sequence, &format!("{part}.arrow"))?, &bytes)
                .await?;
            parts.push(PartFile {
                name: part.to_string(),
                rows,
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
            });
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            sequence,
            frontier: snapshot.frontier,
            written_at_ms: now_ms(),
            folded_with: with,
            partitions: snapshot.partitions.clone(),
            parts,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        self.store.put_bytes(&manifest_key(sequence)?, &json).await?;
        Ok(manifest)
    }

    async fn next_sequence(&self) -> Result<u64, SnapshotError> {
        let listed = self.store.list(PREFIX).await?;
        Ok(listed
            .iter()
            .filter_map(|o| sequence_of(&o.key))
            .map(|(s, _)| s + 1)
            .max()
            .unwrap_or(1))
    }

    /// Deletes every snapshot but the newest `keep` complete ones, and
    /// every incomplete one older than the newest complete one.
    pub async fn prune(&self, keep: usize) -> Result<usize, SnapshotError> {
        let kept: Vec<u64> = self
            .manifests()
            .await?
            .iter()
            .take(keep.max(1))
            .map(|m| m.sequence)
            .collect();
        let Some(&oldest_kept) = kept.last() else {
            return Ok(0);
        };
        let newest = kept[0];
        let mut deleted = std::collections::BTreeSet::new();
        for object in self.store.list(PREFIX).await? {
            let Some((sequence, _)) = sequence_of(&object.key) else {
                continue;
            };
            // Older than what is kept, or torn and older than the newest
            // complete one (a newer torn one may be being written).
            let torn_before_newest = sequence < newest && !kept.contains(&sequence);
            if sequence < oldest_kept || torn_before_newest {
                self.store.delete(&ObjectKey::parse(&object.key)?).await?;
                deleted.insert(sequence);
            }
        }
        Ok(deleted.len())
    }
}

/// The parts of one snapshot, read and checked against its manifest.
struct Parts<'a> {
    store: &'a SnapshotStore,
    manifest: &'a Manifest,
}

impl Parts<'_> {
    async fn read<T: Serialize + DeserializeOwned>(&self, part: &'static str) -> Result<Vec<T>, SnapshotError> {
        let sequence = self.manifest.sequence;
        let fail = |reason: String| SnapshotError::Part { sequence, part, reason };
        let file = self
            .manifest
            .parts
            .iter()
            .find(|p| p.name == part)
            .ok_or_else(|| fail("not in the manifest".into()))?;
        let bytes = self
            .store
            .store
            .get(&key(sequence, &format!("{part}.arrow"))?, None)
            .await?
            .collect()
            .await?;
        if bytes.len() as u64 != file.bytes || crc32fast::hash(&bytes) != file.crc32 {
            return Err(fail(format!(
                "{} bytes with another checksum than the manifest's {} bytes: damaged or replaced",
                bytes.len(),
                file.bytes
            )));
        }
        let rows: Vec<T> = decode(&bytes).map_err(fail)?;
        if rows.len() as u64 != file.rows {
            return Err(fail(format!("{} rows, the manifest says {}", rows.len(), file.rows)));
        }
        Ok(rows)
    }
}

/// The Arrow fields of `rows`, traced from the rows themselves (ids are
/// not self-describing types, so tracing the Rust type alone cannot tell
/// their shape). No rows, no fields: an empty part reads back empty.
fn fields<T: Serialize>(rows: &[T]) -> Result<Vec<FieldRef>, String> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let options = TracingOptions::default().allow_null_fields(true);
    let fields = Vec::<FieldRef>::from_samples(rows, options).map_err(|e| e.to_string())?;
    Ok(fields.iter().map(|f| Arc::new(nullable(f))).collect())
}

/// `field` with it and everything inside it nullable: a struct inside an
/// enum's variant is null in the rows of the other variants, which
/// Arrow's reader refuses in a field that says it is never null.
fn nullable(field: &Field) -> Field {
    let inner = |fields: &Fields| -> Fields { fields.iter().map(|f| nullable(f)).collect() };
    let data_type = match field.data_type() {
        DataType::Struct(fields) => DataType::Struct(inner(fields)),
        DataType::List(item) => DataType::List(Arc::new(nullable(item))),
        DataType::LargeList(item) => DataType::LargeList(Arc::new(nullable(item))),
        DataType::Union(fields, mode) => DataType::Union(
            fields
                .iter()
                .map(|(id, f)| (id, Arc::new(nullable(f))))
                .collect::<UnionFields>(),
            *mode,
        ),
        other => other.clone(),
    };
    field.clone().with_data_type(data_type).with_nullable(true)
}

/// `rows` as an Arrow IPC file, in batches.
fn encode<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, String> {
    let fields = fields(rows)?;
    let schema = arrow_schema::Schema::new(fields.clone());
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut out, &schema).map_err(|e| e.to_string())?;
    for chunk in rows.chunks(BATCH_ROWS) {
        let batch = serde_arrow::to_record_batch(&fields, &chunk).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// The rows of an Arrow IPC file [`encode`] wrote.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
    let reader = arrow_ipc::reader::FileReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        out.extend(serde_arrow::from_record_batch::<Vec<T>>(&batch).map_err(|e| e.to_string())?);
    }
    Ok(out)
}
