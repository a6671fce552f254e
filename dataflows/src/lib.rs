//! Timely/differential dataflows that keep Reelflow's live views over the
//! event log: sources reading log partitions, the views, peeks at a
//! timestamp, and the cluster configuration.
//!
//! Nothing is here yet: the views land with their own capability, and until
//! then no command offers them.
