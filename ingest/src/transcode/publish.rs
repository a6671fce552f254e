//! Putting a rendition's files in object storage while ffmpeg still writes
//! them, so a video plays before its pass is over.
//!
//! ffmpeg finishes a segment before it lists it in the rendition playlist
//! (which it replaces atomically), so a listed segment is complete. Each
//! round stores the init segment and every newly listed segment, then the
//! playlist that lists them: a player never sees a segment it cannot fetch.
//! During the pass the playlists are `EVENT` playlists; the last round
//! turns them into `VOD`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::storage::{ObjectKey, ObjectStore};
use crate::transcode::ladder::Rung;

/// What has been stored of each rendition.
pub struct RenditionPublisher {
    prefix: String,
    out_dir: PathBuf,
    stored: HashMap<String, HashSet<String>>,
    /// Bytes stored so far.
    pub bytes: u64,
}

/// Files a playlist refers to: the init segment, then the media segments.
fn referenced(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            if let Some(uri) = rest.split('"').next() {
                out.push(uri.to_string());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    out
}

async fn put_file<S: ObjectStore>(store: &S, path: &Path, key: &str) -> Result<u64, String> {
    let key = ObjectKey::parse(key).map_err(|e| e.to_string())?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    store
        .put_stream(&key, file)
        .await
        .map(|m| m.size)
        .map_err(|e| format!("storing {key}: {e}"))
}

impl RenditionPublisher {
    /// A publisher of `out_dir/<rung>/` to `prefix/<rung>/`.
    pub fn new(prefix: String, out_dir: PathBuf) -> Self {
        Self {
            prefix,
            out_dir,
            stored: HashMap::new(),
            bytes: 0,
        }
    }

    /// Stores what is new in every rendition; with `last`, the playlists
    /// become VOD. Returns whether every rendition has a segment stored.
    pub async fn round<S: ObjectStore>(&mut self, store: &S, rungs: &[Rung], last: bool) -> Result<bool, String> {
        let mut all_playable = true;
        for r in rungs {
            let dir = self.out_dir.join(&r.name);
            let playlist = match tokio::fs::read_to_string(dir.join("index.m3u8")).await {
                Ok(p) => p,
                Err(_) if !last => {
                    all_playable = false;
                    continue;
                }
                Err(e) => return Err(format!("ffmpeg wrote no {} playlist: {e}", r.name)),
            };
            let stored = self.stored.entry(r.name.clone()).or_default();
            let mut new = false;
            for file in referenced(&playlist) {
                if file.contains('/') || file.starts_with('.') || stored.contains(&file) {
                    continue;
                }
                self.bytes += put_file(store, &dir.join(&file), &format!("{}/{}/{file}", self.prefix, r.name)).await?;
                stored.insert(file);
                new = true;
            }
            let segments = stored.iter().filter(|f| f.ends_with(".m4s")).count();
            all_playable &= segments > 0;
            if new || last {
                let text = if last {
                    playlist.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
                } else {
                    playlist
                };
                if last {
                    tokio::fs::write(dir.join("index.m3u8"), &text)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let key =
                    ObjectKey::parse(&format!("{}/{}/index.m3u8", self.prefix, r.name)).map_err(|e| e.to_string())?;
                self.bytes += store
                    .put_bytes(&key, text.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?
                    .size;
            }
        }
        Ok(all_playable)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_init_and_segments() {
        let p = "#EXTM3U\n#EXT-X-MAP:URI=\"init_720p.mp4\"\n#EXTINF:4.0,\nseg_00000.m4s\n#EXTINF:4.0,\nseg_00001.m4s\n";
        assert_eq!(
            super::referenced(p),
            ["init_720p.mp4", "seg_00000.m4s", "seg_00001.m4s"]
        );
    }
}
