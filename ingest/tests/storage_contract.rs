//! ONE contract suite for object storage, run against a local directory and
//! against the real S3 server that `scripts/services.sh` starts (versitygw;
//! its address comes from `REELFLOW_TEST_S3_*`). A case is written once,
//! generic over [`ObjectStore`], and instantiated for each store below.

use std::pin::Pin;
use std::task::{Context, Poll};

use reelflow_ingest::storage::{LocalStore, ObjectKey, ObjectStore, S3Config, S3Store, StorageError};
use tokio::io::{AsyncRead, ReadBuf};
use uuid::Uuid;

trait Harness {
    type Store: ObjectStore;
    async fn open(&self) -> Self::Store;
    /// A key prefix no other case or run uses.
    fn prefix(&self) -> &str;
}

struct Local {
    dir: tempfile::TempDir,
}

impl Harness for Local {
    type Store = LocalStore;
    async fn open(&self) -> LocalStore {
        LocalStore::open(self.dir.path()).expect("open local store")
    }
    fn prefix(&self) -> &str {
        "contract"
    }
}

struct S3 {
    config: S3Config,
    prefix: String,
}

impl S3 {
    fn new() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: these tests need the real S3 server; run scripts/test.sh \
                     (or scripts/services.sh start, then eval \"$(scripts/services.sh env)\")"
                )
            })
        };
        Self {
            config: S3Config {
                endpoint: Some(var("REELFLOW_TEST_S3_ENDPOINT")),
                access_key_id: Some(var("REELFLOW_TEST_S3_ACCESS_KEY_ID")),
                secret_access_key: Some(var("REELFLOW_TEST_S3_SECRET_ACCESS_KEY")),
                bucket: "reelflow-contract".into(),
                part_size_bytes: 5 * 1024 * 1024,
                ..S3Config::default()
            },
            prefix: format!("contract-{}", Uuid::new_v4().simple()),
        }
    }
}

impl Harness for S3 {
    type Store = S3Store;
    async fn open(&self) -> S3Store {
        let store = S3Store::connect(&self.config).await.expect("configure S3");
        store.ensure_bucket().await.expect("create bucket");
        store
    }
    fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A body of `len` pseudo-random bytes produced on the fly, 64 KiB per read,
/// like a network upload: the store has to stream it.
struct Generated {
    len: u64,
    pos: u64,
}

fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

impl AsyncRead for Generated {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.len - self.pos).min(64 * 1024);
        let start = self.pos;
        let bytes: Vec<u8> = (start..start + n).map(byte_at).collect();
        buf.put_slice(&bytes);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn key(h: &impl Harness, name: &str) -> ObjectKey {
    ObjectKey::parse(&format!("{}/{name}", h.prefix())).expect("valid key")
}

mod cases {
    use super::*;

    /// Put, head, get and ranged gets of a small object.
    pub async fn put_get_head_range<H: Harness>(h: &H) {
        let store = h.open().await;
        let k = key(h, "videos/v1/poster.jpg");
        assert!(store.head(&k).await.expect("head").is_none());
        let body: Vec<u8> = (0..10_000u64).map(byte_at).collect();
        let meta = store.put_bytes(&k, &body).await.expect("put");
        assert_eq!((meta.key.as_str(), meta.size), (k.as_str(), 10_000));
        let head = store.head(&k).await.expect("head").expect("exists");
        assert_eq!(head.size, 10_000);
        assert!(!head.etag.is_empty());
        assert_eq!(
            store.get(&k, None).await.expect("get").collect().await.expect("read"),
            body
        );

        let part = store.get(&k, Some(100..200)).await.expect("ranged get");
        assert_eq!((part.range.clone(), part.meta.size), (100..200, 10_000));
        assert_eq!(part.collect().await.expect("read"), body[100..200].to_vec());
        // A range past the end is clamped, as HTTP does.
        let tail = store.get(&k, Some(9_990..20_000)).await.expect("tail");
        assert_eq!(tail.range, 9_990..10_000);
        assert_eq!(tail.collect().await.expect("read"), body[9_990..].to_vec());
        match store.get(&k, Some(10_000..10_001)).await {
            Err(StorageError::InvalidRange { size: 10_000, .. }) => {}
            Err(other) => panic!("expected InvalidRange, got {other}"),
            Ok(_) => panic!("expected InvalidRange, got a body"),
        }
        // Overwrite replaces the whole object.
        store.put_bytes(&k, b"short").await.expect("overwrite");
        assert_eq!(
            store.get(&k, None).await.expect("get").collect().await.expect("read"),
            b"short"
        );
    }

    /// A body larger than one part is streamed (multipart on S3) and comes
    /// back intact.
    pub async fn large_streamed_put<H: Harness>(h: &H) {
        let store = h.open().await;
        let k = key(h, "videos/v2/source");
        let len = 12 * 1024 * 1024 + 12_345; // three parts of 5 MiB, the last short
        let meta = store
            .put_stream(&k, Generated { len, pos: 0 })
            .await
            .expect("streamed put");
        assert_eq!(meta.size, len);
        let got = store.get(&k, None).await.expect("get").collect().await.expect("read");
        assert_eq!(got.len() as u64, len);
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == byte_at(i as u64)),
            "content differs"
        );
        let middle = store
            .get(&k, Some(5 * 1024 * 1024 - 10..5 * 1024 * 1024 + 10))
            .await
            .expect("range over a part boundary");
        let want: Vec<u8> = (5 * 1024 * 1024 - 10..5 * 1024 * 1024 + 10).map(byte_at).collect();
        assert_eq!(middle.collect().await.expect("read"), want);
    }

    /// Listing by prefix, deleting, and deleting what is not there.
    pub async fn list_and_delete<H: Harness>(h: &H) {
        let store = h.open().await;
        for name in [
            "videos/a/hls/720p/seg_1.m4s",
            "videos/a/hls/720p/seg_2.m4s",
            "videos/a/master.m3u8",
            "videos/ab/source",
            "videos/b/source",
        ] {
            store.put_bytes(&key(h, name), name.as_bytes()).await.expect("put");
        }
        let listed = |prefix: &str| {
            let store = &store;
            let prefix = format!("{}/{prefix}", h.prefix());
            async move {
                store
                    .list(&prefix)
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|m| m.key.trim_start_matches(h.prefix()).to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            listed("videos/a/").await,
            vec![
                "/videos/a/hls/720p/seg_1.m4s",
                "/videos/a/hls/720p/seg_2.m4s",
                "/videos/a/master.m3u8"
            ]
        );
        assert_eq!(listed("videos/a").await.len(), 4, "a prefix need not end at a '/'");
        assert_eq!(listed("videos/zzz").await, Vec::<String>::new());

        let removed = store
            .delete_prefix(&format!("{}/videos/a/", h.prefix()))
            .await
            .expect("delete prefix");
        assert_eq!(removed, 3);
        assert_eq!(listed("videos/").await, vec!["/videos/ab/source", "/videos/b/source"]);
        let gone = key(h, "videos/b/source");
        store.delete(&gone).await.expect("delete");
        store.delete(&gone).await.expect("deleting twice is fine");
        assert!(store.head(&gone).await.expect("head").is_none());
        assert!(matches!(store.get(&gone, None).await, Err(StorageError::NotFound(_))));
    }

    /// A multipart upload whose parts arrive over time — from a new client
    /// after a restart, too — completes into one object; nothing is visible
    /// before; an aborted one leaves nothing behind.
    pub async fn multipart_upload_resumes_across_restarts<H: Harness>(h: &H) {
        let k = key(h, "videos/v3/source");
        let part = |n: u64, len: u64| -> bytes::Bytes {
            (n * 10_000_000..n * 10_000_000 + len)
                .map(byte_at)
                .collect::<Vec<u8>>()
                .into()
        };
        let five_mib = 5 * 1024 * 1024;
        let (id, first) = {
            let store = h.open().await;
            let id = store.create_multipart(&k).await.expect("create");
            let first = store.upload_part(&k, &id, 1, part(1, five_mib)).await.expect("part 1");
            assert_eq!(first.size, five_mib);
            (id, first)
        };
        // A new client (a restarted server) carries on with the same id.
        let store = h.open().await;
        assert!(
            store.head(&k).await.expect("head").is_none(),
            "nothing is visible before completion"
        );
        let second = store.upload_part(&k, &id, 2, part(2, five_mib)).await.expect("part 2");
        let last = store.upload_part(&k, &id, 3, part(3, 1234)).await.expect("part 3");
        let meta = store
            .complete_multipart(&k, &id, &[first, second, last])
            .await
            .expect("complete");
        assert_eq!(meta.size, 2 * five_mib + 1234);
        let got = store.get(&k, None).await.expect("get").collect().await.expect("read");
        let mut want = part(1, five_mib).to_vec();
        want.extend_from_slice(&part(2, five_mib));
        want.extend_from_slice(&part(3, 1234));
        assert!(got == want, "joined object differs from its parts");

        let aborted = key(h, "videos/v4/source");
        let id = store.create_multipart(&aborted).await.expect("create");
        store.upload_part(&aborted, &id, 1, part(4, 1000)).await.expect("part");
        store.abort_multipart(&aborted, &id).await.expect("abort");
        store
            .abort_multipart(&aborted, &id)
            .await
            .expect("aborting twice is fine");
        assert!(store.head(&aborted).await.expect("head").is_none());
        assert!(
            store.upload_part(&aborted, &id, 2, part(4, 10)).await.is_err(),
            "an aborted upload takes no parts"
        );
    }
}

#[tokio::test]
async fn local_directory_never_writes_outside_its_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("objects");
    let store = LocalStore::open(&root).expect("open");
    store
        .put_bytes(&ObjectKey::parse("a/b").expect("key"), b"x")
        .await
        .expect("put");
    let mut names: Vec<String> = std::fs::read_dir(outer.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["objects"]);
    assert!(
        store
            .list("")
            .await
            .expect("list")
            .iter()
            .all(|m| !m.key.starts_with('.')),
        "temporary files are not objects"
    );
    for bad in ["../", "a/../../", "/", "a//"] {
        assert!(
            matches!(store.list(bad).await, Err(StorageError::InvalidKey { .. })),
            "listing {bad:?} was allowed"
        );
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(&super::Local { dir: tempfile::tempdir().expect("tempdir") }).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(&super::S3::new()).await;
                }
            )*
        }
    };
}

contract!(
    put_get_head_range,
    large_streamed_put,
    list_and_delete,
    multipart_upload_resumes_across_restarts
);
