//! Signed playback tokens: a JWT (HS256, signed with the same rotating
//! keyring as access tokens, so it carries a `kid`) whose `sub` is the
//! video and whose audience is [`PLAYBACK_AUDIENCE`], so an access token can
//! never pass for one, nor the other way round. Like Mux's signed playback
//! IDs, the token rides in the query string of every playlist and segment
//! URI, so a plain HLS player needs nothing special to play a private video.
//!
//! A token names the playback generation of its video when it was issued
//! (`gen`). Every change of visibility moves the generation on, and a
//! private video accepts only tokens of its current generation: making a
//! video private revokes every token issued before, whether minted by
//! anyone while it was public or by its owner while it was private before.
//! Tokens of a public or unlisted video need no such check, since the video
//! plays without one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{Keyring, TokenError};

/// Audience of playback tokens.
pub const PLAYBACK_AUDIENCE: &str = "reelflow-playback";

/// The claims of a playback token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaybackClaims {
    /// The video it opens.
    pub sub: Uuid,
    /// Always [`PLAYBACK_AUDIENCE`].
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The video's playback generation when the token was issued.
    #[serde(default)]
    pub r#gen: i64,
}

/// Issues a token for `video` valid for `ttl_s` seconds; returns it with its
/// expiry (Unix seconds).
pub fn issue(keys: &Keyring, video: Uuid, generation: i64, ttl_s: u64) -> (String, i64) {
    let now = chrono::Utc::now().timestamp();
    let exp = now + ttl_s as i64;
    let claims = PlaybackClaims {
        sub: video,
        aud: PLAYBACK_AUDIENCE.into(),
        iat: now,
        exp,
        r#gen: generation,
    };
    (keys.sign(&claims), exp)
}

/// Why a token does not open a video.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackTokenError {
    /// Not a valid playback token (forged, expired, wrong audience…).
    #[error("the playback token is not valid: {0}")]
    Invalid(#[from] TokenError),
    /// A valid token for another video.
    #[error("the playback token is for another video")]
    OtherVideo,
    /// A token issued before the video's visibility last changed.
    #[error("the playback token was issued before the video's visibility last changed; ask its owner for a new one")]
    Revoked,
}

/// Checks that `token` is a valid playback token for `video`; returns its
/// claims, for [`admits`] once the video's access rules are known.
pub fn verify(keys: &Keyring, token: &str, video: Uuid) -> Result<PlaybackClaims, PlaybackTokenError> {
    let claims: PlaybackClaims = keys.verify(token, PLAYBACK_AUDIENCE)?;
    if claims.sub == video {
        Ok(claims)
    } else {
        Err(PlaybackTokenError::OtherVideo)
    }
}

/// Whether a verified token still opens its video: a private video accepts
/// only tokens of its current playback generation.
pub fn admits(claims: &PlaybackClaims, access: &super::cache::Access) -> Result<(), PlaybackTokenError> {
    if access.visibility == crate::catalog::Visibility::Private && claims.r#gen != access.generation {
        return Err(PlaybackTokenError::Revoked);
    }
    Ok(())
}

/// `playlist` with `token` carried into every URI it holds: the URI lines
/// (variants, segments) and the `URI="…"` attributes of tags
/// (`EXT-X-MAP`, `EXT-X-MEDIA`, `EXT-X-I-FRAME-STREAM-INF`…).
pub fn carry_into_playlist(playlist: &str, token: &str) -> String {
    let query = |uri: &str| {
        let sep = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{sep}token={token}")
    };
    let mut out = String::with_capacity(playlist.len() + 64 * playlist.lines().count());
    for line in playlist.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.push_str(line);
        } else if trimmed.starts_with('#') {
            let mut rest = line;
            while let Some(at) = rest.find("URI=\"") {
                let (head, tail) = rest.split_at(at + 5);
                out.push_str(head);
                match tail.find('"') {
                    Some(end) => {
                        out.push_str(&query(&tail[..end]));
                        rest = &tail[end..];
                    }
                    None => {
                        rest = tail;
                        break;
                    }
                }
            }
            out.push_str(rest);
        } else {
            out.push_str(&query(trimmed));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_of_a_playlist_carries_the_token() {
        let media = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.000000,\nseg_00000.m4s\n\
                     #EXTINF:2.5,\nseg_00001.m4s\n#EXT-X-ENDLIST\n";
        let out = carry_into_playlist(media, "T.K.N");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4?token=T.K.N\"\n#EXTINF:4.000000,\n\
             seg_00000.m4s?token=T.K.N\n#EXTINF:2.5,\nseg_00001.m4s?token=T.K.N\n#EXT-X-ENDLIST\n"
        );
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.4d401f\"\n720p/index.m3u8\n\
                      #EXT-X-MEDIA:TYPE=AUDIO,URI=\"a/x.m3u8?v=1\",NAME=\"en\"\n";
        let out = carry_into_playlist(master, "t");
        assert!(out.contains("\n720p/index.m3u8?token=t\n"), "{out}");
        assert!(out.contains("URI=\"a/x.m3u8?v=1&token=t\",NAME=\"en\""), "{out}");
        assert!(out.contains("CODECS=\"avc1.4d401f\""), "{out}");
    }
}

/// A playback grant: the token and the URLs that carry it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PlaybackGrant {
    /// The signed playback token.
    pub token: String,
    /// When it expires (RFC 3339).
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The master playlist, token included: give this to any HLS player.
    pub master_url: String,
    /// The poster, token included.
    pub poster_url: String,
    /// The storyboard sprite, token included.
    pub storyboard_url: String,
    /// Reelflow's player page for the video, token included.
    pub player_url: String,
}

/// A signed playback token for a video the caller may watch: anyone for a
/// public or unlisted video, only its owner and admins for a private one.
#[utoipa::path(post, path = "/v1/videos/{id}/playback-token", tag = "playback",
    params(("id" = Uuid, Path, description = "video id")),
    responses((status = 200, body = PlaybackGrant), (status = 401, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem)))]
pub async fn playback_token(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    crate::auth::MaybeCaller(caller): crate::auth::MaybeCaller,
    crate::problem::ApiPath(id): crate::problem::ApiPath<Uuid>,
) -> crate::problem::ApiResult<axum::Json<PlaybackGrant>> {
    let video = crate::catalog::load_visible(&state, caller.as_ref(), id).await?;
    // The generation read now: the access cache may be a moment old.
    let generation = crate::catalog::playback_access(&state.db, video.id)
        .await?
        .map_or(0, |(_, _, generation)| generation);
    let (token, exp) = issue(&state.keys, video.id, generation, state.config.playback.token_ttl_s);
    let v = video.id;
    Ok(axum::Json(PlaybackGrant {
        master_url: format!("/v1/videos/{v}/hls/master.m3u8?token={token}"),
        poster_url: format!("/v1/videos/{v}/poster.jpg?token={token}"),
        storyboard_url: format!("/v1/videos/{v}/storyboard.jpg?token={token}"),
        player_url: format!("/watch/{v}?token={token}"),
        expires_at: chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default(),
        token,
    }))
}
