//! What playback keeps in memory and counts: each video's access rules,
//! hot media objects and playlists, and the counters `/metrics` reads.
//!
//! A file of its own, below the handlers: the application's state holds a
//! [`Delivery`], and the handlers (`delivery.rs`, `beacons.rs`) read it
//! through that state, so the state never depends on a handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::catalog::Visibility;
use crate::config::PlaybackConfig;
use crate::db::Db;
use crate::problem::{ApiError, ApiResult};

/// What decides who may watch a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Its visibility.
    pub visibility: Visibility,
    /// Its owner.
    pub owner: Uuid,
    /// Its playback generation: a private video accepts only the playback
    /// tokens of its current one ([`super::token`]).
    pub generation: i64,
}

/// An object held in memory.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) bytes: Bytes,
    pub(super) etag: Arc<str>,
}

/// The delivery caches of one process.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Video → its access rules (`None`: no such video).
    access: moka::future::Cache<Uuid, Option<Access>>,
    /// Object key → bytes, weighed in bytes.
    pub(super) objects: moka::future::Cache<String, Stored>,
    /// Playlists, kept for a second: they change while a video transcodes.
    pub(super) playlists: moka::future::Cache<String, Stored>,
    pub(super) object_max: u64,
    /// Counters for `/metrics`.
    pub metrics: Arc<PlaybackMetrics>,
}

impl Delivery {
    /// Caches sized as `config` says.
    pub fn new(config: &PlaybackConfig) -> Self {
        Self {
            access: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(config.access_ttl_ms))
                .build(),
            objects: moka::future::Cache::builder()
                .max_capacity(config.cache_bytes)
                .weigher(|k: &String, v: &Stored| u32::try_from(k.len() + v.bytes.len()).unwrap_or(u32::MAX))
                .build(),
            playlists: moka::future::Cache::builder()
                .max_capacity(16 << 20)
                .weigher(|k: &String, v: &Stored| u32::try_from(k.len() + v.bytes.len()).unwrap_or(u32::MAX))
                .time_to_live(Duration::from_secs(1))
                .build(),
            object_max: config.cache_object_max_bytes,
            metrics: Arc::default(),
        }
    }

    /// Bytes of media held in memory.
    pub fn cache_bytes(&self) -> u64 {
        self.objects.weighted_size()
    }

    /// Forgets what is remembered about `video` (after a change made here).
    pub async fn forget(&self, video: Uuid) {
        self.access.invalidate(&video).await;
    }

    /// The access rules of `video`, from the catalog at most
    /// `access_ttl_ms` ago.
    pub async fn access(&self, db: &Db, video: Uuid) -> ApiResult<Option<Access>> {
        let db = db.clone();
        self.access
            .try_get_with(video, async move {
                crate::catalog::playback_access(&db, video).await.map(|v| {
                    v.map(|(visibility, owner, generation)| Access {
                        visibility,
                        owner,
                        generation,
                    })
                })
            })
            .await
            .map_err(|e| match Arc::into_inner(e) {
                Some(e) => e,
                None => ApiError::Unavailable("the catalog is unavailable; try again shortly".into()),
            })
    }
}

/// Counters of playback, read on `/metrics` ([`crate::exposition`]).
#[derive(Debug, Default)]
pub struct PlaybackMetrics {
    /// Media answers served from the in-memory cache.
    pub cache_hits: AtomicU64,
    /// Media answers that had to read object storage.
    pub cache_misses: AtomicU64,
    /// Body bytes of media answers (ranges counted as sent).
    pub bytes_sent: AtomicU64,
    /// Player events acknowledged by the log.
    pub beacon_events: AtomicU64,
    /// Beacon batches refused as malformed.
    pub beacon_batches_refused: AtomicU64,
}

impl PlaybackMetrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}
