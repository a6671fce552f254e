//! tus 1.0.0 headers: parsing what clients send, and the headers every
//! answer carries.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::problem::ApiError;

/// The protocol version we speak.
pub const VERSION: &str = "1.0.0";
/// The extensions we support.
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// Checksum algorithms we accept.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// Content type of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// The 412 for a request that does not speak our version of tus.
pub fn version_mismatch(headers: &HeaderMap) -> Option<Response> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => None,
        _ => {
            let mut r = ApiError::BadRequest(format!("send Tus-Resumable: {VERSION}")).into_response();
            *r.status_mut() = StatusCode::PRECONDITION_FAILED;
            r.headers_mut().insert("tus-version", HeaderValue::from_static(VERSION));
            Some(r)
        }
    }
}

/// Adds `Tus-Resumable` to an answer.
pub fn tag(mut r: Response) -> Response {
    r.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    r
}

/// A number header.
pub fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a non-negative integer"))),
    }
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).
pub fn metadata(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("Upload-Metadata value of {key:?} is not base64 of UTF-8 text"))
            })?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-1.
    Sha1(Vec<u8>),
    /// SHA-256.
    Sha256(Vec<u8>),
}

/// Parses `Upload-Checksum`, if present.
pub fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(v) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Upload-Checksum is not text".into()))?;
    let (algorithm, digest) = v
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::BadRequest("Upload-Checksum must be '<algorithm> <base64>'".into()))?;
    let digest = STANDARD
        .decode(digest.trim())
        .map_err(|_| ApiError::BadRequest("Upload-Checksum digest is not base64".into()))?;
    match algorithm {
        "sha1" if digest.len() == 20 => Ok(Some(Checksum::Sha1(digest))),
        "sha256" if digest.len() == 32 => Ok(Some(Checksum::Sha256(digest))),
        "sha1" | "sha256" => Err(ApiError::BadRequest(format!(
            "Upload-Checksum {algorithm} digest has the wrong length"
        ))),
        other => Err(ApiError::BadRequest(format!(
            "Upload-Checksum algorithm {other:?} is not supported; use one of {CHECKSUM_ALGORITHMS}"
        ))),
    }
}

/// An RFC 7231 date for `Upload-Expires`.
pub fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metadata_and_checksums() {
        let m = metadata("video_id MTIz,filename Y2xpcC5tcDQ=,flag").expect("valid");
        assert_eq!(
            m,
            vec![
                ("video_id".into(), "123".into()),
                ("filename".into(), "clip.mp4".into()),
                ("flag".into(), String::new())
            ]
        );
        assert!(metadata("filename !!!").is_err());
        let mut h = HeaderMap::new();
        h.insert(
            "upload-checksum",
            HeaderValue::from_static("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        );
        assert!(matches!(checksum(&h), Ok(Some(Checksum::Sha1(d))) if d.len() == 20));
        h.insert(
            "upload-checksum",
            HeaderValue::from_static("md5 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        );
        assert!(checksum(&h).is_err());
    }
}
