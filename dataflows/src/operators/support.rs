//! What the operators share: hashing, and holding capabilities for input
//! that waits for the frontier.

use timely::dataflow::operators::{CapabilitySet, InputCapability};

use crate::time::Time;

/// Keys are hashed with foldhash, seeded per map: SipHash cost a tenth of
/// a session's fold.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A set hashed as [`HashMap`] is.
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Holds a batch of input: its updates in `pending`, and a capability for
/// its time in `caps`.
pub(crate) fn hold<D>(
    cap: &InputCapability<Time>,
    data: &mut Vec<D>,
    caps: &mut CapabilitySet<Time>,
    pending: &mut Vec<D>,
) {
    for cap in cap.retain_stamp(0).iter() {
        caps.insert(cap.clone());
    }
    pending.append(data);
}

/// Keeps a capability only for `earliest`, the earliest time still pending:
/// later output is at that time or after it, and nothing earlier is held,
/// so downstream moves on.
pub(crate) fn release(caps: &mut CapabilitySet<Time>, earliest: Option<Time>) {
    match earliest {
        None => *caps = CapabilitySet::new(),
        Some(t) => caps.downgrade([t]),
    }
}

/// Running a small dataflow to the end and reading what it made, for the
/// operators' tests.
#[cfg(test)]
pub(crate) mod harness {
    use differential_dataflow::ExchangeData;
    use differential_dataflow::consolidation::consolidate;
    use timely::dataflow::operators::Capture;
    use timely::dataflow::operators::capture::Extract;

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use crate::time::{Coll, Time};

    /// An update: data, time, multiplicity.
    pub(crate) type Update<D> = (D, Time, isize);

    /// `updates` accumulated to `time`, consolidated.
    pub(crate) fn at<D: Ord + Clone>(updates: &[Update<D>], time: Time) -> Vec<(D, isize)> {
        let mut v: Vec<(D, isize)> = updates
            .iter()
            .filter(|(_, t, _)| *t <= time)
            .map(|(d, _, r)| (d.clone(), *r))
            .collect();
        consolidate(&mut v);
        v
    }

    /// Seeded updates of a side collection `(side key, value)`: values
    /// replaced now and then, sometimes two at once, sometimes none.
    pub(crate) fn side_updates(seed: u64) -> Vec<Update<(u8, u8)>> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut present: Vec<(u8, u8)> = Vec::new();
        let mut out = Vec::new();
        let mut time = 0;
        for _ in 0..60 {
            time += rng.random_range(0..10);
            if !present.is_empty() && rng.random_bool(0.4) {
                let jl = present.swap_remove(rng.random_range(0..present.len()));
                out.push((jl, time, -1));
            }
            if rng.random_bool(0.7) {
                let jl = (rng.random_range(0..3u8), rng.random_range(0..5u8));
                present.push(jl);
                out.push((jl, time, 1));
            }
        }
        out
    }

    /// What the dataflow `build` makes outputs, fed all at once.
    pub(crate) fn run<D: ExchangeData>(
        build: impl for<'s> FnOnce(timely::dataflow::Scope<'s, Time>) -> Coll<'s, D> + Send + Sync + 'static,
    ) -> Vec<Update<D>> {
        let captured = timely::example(move |scope| build(scope).inner.capture());
        captured.extract().into_iter().flat_map(|(_, d)| d).collect()
    }
}
