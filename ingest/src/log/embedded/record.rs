//! The on-disk frame of one record, and its CRC check.
//!
//! ```text
//! len:u32le  crc:u32le  offset:u64le  log_time_ms:i64le  key_len:u32le  key  value
//! └ header ┘ └──────────────────────── body (len bytes, CRC-32) ─────────────────┘
//! ```

/// Bytes before the body.
pub const HEADER_LEN: usize = 8;
/// Fixed part of the body before the key.
pub const BODY_FIXED_LEN: usize = 8 + 8 + 4;
/// Largest body accepted; anything larger is treated as corruption.
pub const MAX_BODY_LEN: usize = 64 * 1024 * 1024;

/// A record decoded from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// Offset stored in the record.
    pub offset: u64,
    /// Log time stored in the record.
    pub timestamp_ms: i64,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// Appends the frame of one record to `out`.
pub fn encode(out: &mut Vec<u8>, offset: u64, timestamp_ms: i64, key: &[u8], value: &[u8]) {
    let body_len = BODY_FIXED_LEN + key.len() + value.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the frame needs (a torn write at the end).
    Truncated,
    /// The length is impossible.
    BadLength(u32),
    /// The CRC does not match the body.
    BadCrc,
}

/// Length of a whole frame from its header, checking the length is sane.
pub fn frame_len(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if (body_len as usize) < BODY_FIXED_LEN || body_len as usize > MAX_BODY_LEN {
        return Err(FrameError::BadLength(body_len));
    }
    Ok(HEADER_LEN + body_len as usize)
}

/// Decodes one whole frame (header and body).
pub fn decode(frame: &[u8]) -> Result<Framed, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let header: &[u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("header slice");
    let len = frame_len(header)?;
    if frame.len() < len {
        return Err(FrameError::Truncated);
    }
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let body = &frame[HEADER_LEN..len];
    if crc32fast::hash(body) != crc {
        return Err(FrameError::BadCrc);
    }
    let offset = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let timestamp_ms = i64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    if BODY_FIXED_LEN + key_len > body.len() {
        // The CRC matched, so this was written this way: still not a record.
        return Err(FrameError::BadLength(body.len() as u32));
    }
    let key = body[BODY_FIXED_LEN..BODY_FIXED_LEN + key_len].to_vec();
    let value = body[BODY_FIXED_LEN + key_len..].to_vec();
    Ok(Framed {
        offset,
        timestamp_ms,
        key,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, 1_700_000_000_000, b"key", b"{\"v\":1}");
        let got = decode(&buf).expect("valid frame");
        assert_eq!(
            got,
            Framed {
                offset: 42,
                timestamp_ms: 1_700_000_000_000,
                key: b"key".to_vec(),
                value: b"{\"v\":1}".to_vec()
            }
        );

        assert_eq!(decode(&buf[..buf.len() - 1]), Err(FrameError::Truncated));
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(decode(&flipped), Err(FrameError::BadCrc));
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Err(FrameError::BadLength(u32::MAX)));
    }
}
