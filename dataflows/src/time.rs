//! The dataflows' shared vocabulary of time: the timestamp, the collection
//! type every view is made of, and the clock.
//!
//! A leaf: everything in the crate may import it, it imports nothing of
//! the crate. A record's time is its log time in milliseconds, made
//! monotone per partition by the sources, so the same log gives the same
//! views at every time, and time is totally ordered (which is what the
//! `_total` operators in [`crate::operators`] rely on).

use differential_dataflow::VecCollection;

/// Log time in milliseconds: the dataflows' timestamp.
pub type Time = u64;

/// A collection of the views' dataflow.
pub type Coll<'s, D, R = isize> = VecCollection<'s, Time, D, R>;

/// The clock, in milliseconds since 1970.
pub fn now_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Time)
}
