//! The video catalog: videos with their metadata, who may see and change
//! them, listing with filters, search and cursor paging. Every change is
//! committed together with its `reelflow.catalog` event (see
//! [`crate::outbox`]).
//!
//! Visibility: a public video is listed and readable by anyone; an unlisted
//! one is readable by anyone with its id but listed only to its owner and
//! admins; a private one exists only for its owner and admins — everyone
//! else gets the same 404 as for a video that never existed.

mod model;
mod routes;
pub mod status;
mod store;

pub use model::{NewVideo, Video, VideoPage, VideoPatch, VideoStatus, Visibility};
pub use routes::*;
pub use store::{delete_video_and_objects, load, load_visible, playback_access};
