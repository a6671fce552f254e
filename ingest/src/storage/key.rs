//! Object keys, checked once so neither store can be tricked into touching a
//! path outside its root.

use super::StorageError;

/// A key that is safe as an S3 key and as a relative path: 1–1024 bytes of
/// `/`-separated segments, none empty, none starting with `.` (so no `.` or
/// `..`), no backslash and no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks `key`.
    pub fn parse(key: &str) -> Result<Self, StorageError> {
        let fail = |reason| {
            Err(StorageError::InvalidKey {
                key: key.to_string(),
                reason,
            })
        };
        if key.is_empty() {
            return fail("it is empty");
        }
        if key.len() > 1024 {
            return fail("it is longer than 1024 bytes");
        }
        if key.chars().any(|c| c.is_control() || c == '\\') {
            return fail("it contains a control character or a backslash");
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return fail("it has an empty path segment (leading, trailing or double '/')");
            }
            if segment.starts_with('.') {
                return fail("a path segment starts with '.' (no '.', '..' or hidden names)");
            }
        }
        Ok(Self(key.to_string()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for ok in ["videos/0190/source", "a", "videos/x/hls/720p/seg_00001.m4s", "x/y.z"] {
            assert_eq!(ObjectKey::parse(ok).expect(ok).as_str(), ok);
        }
    }

    #[test]
    fn rejects_traversal_and_tricks() {
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a/./b",
            "a//b",
            "a/",
            ".hidden",
            "a\\..\\b",
            "a\0b",
            "a/\nb",
        ] {
            assert!(
                matches!(ObjectKey::parse(bad), Err(StorageError::InvalidKey { .. })),
                "{bad:?} was accepted"
            );
        }
        assert!(ObjectKey::parse(&"k".repeat(1025)).is_err());
    }
}
