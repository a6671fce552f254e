//! Reading the views: at one time across every worker of every process
//! (a peek), or from one time on as changes happen (a subscription).
//!
//! - [`request`](Selector): which rows of a view to read, and why a read
//!   may fail ([`PeekError`]).
//! - `shapes`: how each view's arrangement is read as rows, and which
//!   worker holds a key.
//! - `store`: one view's arrangement on one worker, answering requests.
//! - `peek`: the small dataflow that carries requests to the workers that
//!   hold the rows and brings the answers back.
//! - `subscribe`: taps on the arrangements' new batches, released to the
//!   subscriber in time order with progress markers.
//! - `retention`: the one view arranged in a smaller form than it is read,
//!   derived on the reader's side.
//! - [`client`](PeekClient): what the rest of the process calls.
//!
//! Layers: `request` and `shapes` at the bottom, then `store`, `retention`
//! and `subscribe`, then `peek`, then `client`; `runtime.rs` builds the
//! workers' side from them.

mod client;
mod peek;
mod request;
mod retention;
mod shapes;
mod store;
mod subscribe;

pub(crate) use client::Command;
pub use client::{PeekClient, Peeked};
pub(crate) use peek::{Outstanding, Traces, Waiting, peek_dataflow};
pub use request::{PeekError, PeekRequest, RequestKind, Selector};

pub(crate) use shapes::{QOE, RETENTION, ROWS, Shape, VIDEO_STATS, ViewTrace, WATCH_HISTORY, Watched};
pub(crate) use store::{Store, ViewStore};
pub use subscribe::{SubscribeEvent, Subscription, Update};
pub(crate) use subscribe::{Subscribers, TapUpdate, Taps, deliver, tap};
