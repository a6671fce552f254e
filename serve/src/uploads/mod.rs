//! Uploads: the tus 1.0.0 resumable protocol at `/v1/uploads` (core,
//! creation, creation-with-upload, termination, expiration, checksum) and a
//! plain single-request `PUT /v1/videos/{id}/source` for curl users.
//!
//! Bytes stream into object storage as they arrive: every full part
//! (`uploads.part_size_bytes`, 8 MiB by default) becomes a part of a
//! multipart upload, and what is left when a request ends is kept as a small
//! "tail" object, so an upload holds at most one part in memory and any
//! server process can carry it on after a restart. The state (offset, parts)
//! is in the database. When the last byte arrives the parts are joined into
//! `videos/{video}/source`, the size is checked, and — in one transaction —
//! the upload is marked complete, the video becomes `uploaded`, and
//! `upload_completed` goes to the outbox for `reelflow.uploads`: the event
//! exists only once the object is durable.
//!
//! A client may vouch for the whole file with `Upload-Metadata` key
//! `checksum` (`sha256:<hex>` or `sha1:<hex>`): the completed object is
//! read back and hashed, and on a mismatch it is discarded (460); when it
//! matches, the checksum travels in `upload_completed`.
//!
//! A chunk sent with `Upload-Checksum` is first staged on local disk while
//! its hash is computed; on a mismatch it is discarded (460) and the offset
//! stays where it was.

mod protocol;
mod routes;
mod state;

pub use routes::*;
pub use state::sweep_expired;
