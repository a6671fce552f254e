//! View-agnostic operators over log time, one per file, in the style of
//! differential-dataflow's `operators/` (`count_total`, `threshold_total`).
//!
//! Log time is totally ordered, so each operator keeps a key's state in
//! place and sends only what changed, where differential's general
//! operators would keep and replay their output's history. None of them
//! knows what a session or a video is: [`crate::definitions`] says what
//! the views compute, and `views.rs` wires these operators to it.
//!
//! - [`ReduceTotal`]: `reduce` for a totally ordered time, and
//!   [`accumulate_beside`](ReduceTotal::accumulate_beside), a fold of
//!   values that only come, left-joined with a small side collection.
//!   Its keys close after a while without values ([`Phase`]).
//! - [`fold_closed`]: `reduce` over what is open, beside a fold of what
//!   has closed, so a reader of closing totals keeps no closed ones.
//! - [`join_sums`]: `count_total` joined with each key's values, in one
//!   operator.
//! - [`project_changes`] and [`sum_changes`]: what a reader takes of a
//!   total's retraction-insertion pairs.
//! - [`distinct_in_window`]: what was seen in the last window, retracted
//!   once the window has passed its last sighting.

mod changes;
mod fold_closed;
mod in_time_order;
mod join_sums;
mod reduce_total;
pub(crate) mod support;
mod window;

pub use changes::{project_changes, sum_changes};
pub use fold_closed::{Latest, fold_closed};
pub use in_time_order::Values;
pub use join_sums::join_sums;
pub use reduce_total::{Accumulator, Besides, Phase, ReduceTotal};
pub use window::distinct_in_window;
