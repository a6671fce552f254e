//! Cluster configuration: W workers per process, N processes.
//!
//! Given explicitly (process index and every process's address, as flags or
//! a hostfile with one `host:port` per line), or derived from what a
//! Kubernetes StatefulSet gives a pod: its name ends in its ordinal (the
//! process index), the replica count is the cluster size, and the peers are
//! reached through the headless Service at `<set>-<i>.<service>:<port>`.
//! Every process must be given the same list in the same order.

use thiserror::Error;

/// Where this process sits in the timely cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Worker threads in this process.
    pub workers: usize,
    /// This process's index in `addresses`.
    pub process: usize,
    /// `host:port` of every process, in index order; empty or one entry for
    /// a single process.
    pub addresses: Vec<String>,
}

/// A cluster configuration that cannot work.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterError {
    /// Something is missing or out of range.
    #[error("cluster configuration: {0}")]
    Invalid(String),
}

impl ClusterConfig {
    /// One process with `workers` threads.
    pub fn single(workers: usize) -> Self {
        Self {
            workers,
            process: 0,
            addresses: Vec::new(),
        }
    }

    /// Explicit process index and peer addresses.
    pub fn explicit(workers: usize, process: usize, addresses: Vec<String>) -> Result<Self, ClusterError> {
        let c = Self {
            workers,
            process,
            addresses,
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads a hostfile: one `host:port` per line; blank lines and `#`
    /// comments are ignored.
    pub fn parse_hostfile(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The configuration of a StatefulSet pod: `pod_name` (its `HOSTNAME`,
    /// `<set>-<ordinal>`), `replicas` processes, peers at `peer_template`
    /// with `{i}` replaced by each ordinal (for example
    /// `reelflow-dataflow-{i}.reelflow-dataflow:2101`).
    pub fn statefulset(
        workers: usize,
        pod_name: &str,
        replicas: usize,
        peer_template: &str,
    ) -> Result<Self, ClusterError> {
        let ordinal = pod_name
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .ok_or_else(|| {
                ClusterError::Invalid(format!(
                    "pod name {pod_name:?} does not end in -<ordinal> as StatefulSet pods do"
                ))
            })?;
        if !peer_template.contains("{i}") {
            return Err(ClusterError::Invalid(format!(
                "peer template {peer_template:?} has no {{i}} for the pod ordinal"
            )));
        }
        let addresses = (0..replicas)
            .map(|i| peer_template.replace("{i}", &i.to_string()))
            .collect();
        Self::explicit(workers, ordinal, addresses)
    }

    /// Processes in the cluster.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }

    /// Workers in the whole cluster.
    pub fn peers(&self) -> usize {
        self.workers * self.processes()
    }

    fn validate(&self) -> Result<(), ClusterError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ClusterError::Invalid(format!(
                "workers per process must be 1-1024, not {}",
                self.workers
            )));
        }
        if self.processes() > 1 && self.process >= self.addresses.len() {
            return Err(ClusterError::Invalid(format!(
                "process index {} is outside the {} addresses given",
                self.process,
                self.addresses.len()
            )));
        }
        if self.addresses.len() <= 1 && self.process != 0 {
            return Err(ClusterError::Invalid(format!(
                "process index {} needs the addresses of all processes",
                self.process
            )));
        }
        Ok(())
    }

    /// The timely configuration.
    pub fn timely(&self) -> timely::Config {
        if self.processes() == 1 {
            timely::Config::process(self.workers)
        } else {
            timely::Config {
                communication: timely::CommunicationConfig::Cluster {
                    threads: self.workers,
                    process: self.process,
                    addresses: self.addresses.clone(),
                    report: false,
                    zerocopy: false,
                },
                worker: timely::WorkerConfig::default(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statefulset_pods_find_their_index_and_peers() {
        let c = ClusterConfig::statefulset(
            2,
            "reelflow-dataflow-2",
            3,
            "reelflow-dataflow-{i}.reelflow-dataflow:2101",
        )
        .unwrap();
        assert_eq!(c.process, 2);
        assert_eq!(c.peers(), 6);
        assert_eq!(c.addresses[0], "reelflow-dataflow-0.reelflow-dataflow:2101");
        assert!(ClusterConfig::statefulset(1, "reelflow-dataflow-3", 3, "x-{i}:1").is_err());
        assert!(ClusterConfig::statefulset(1, "dataflow", 3, "x-{i}:1").is_err());
    }

    #[test]
    fn hostfiles_skip_blanks_and_comments() {
        let hosts = ClusterConfig::parse_hostfile("a:1\n\n# b\nc:2 # third\n");
        assert_eq!(hosts, ["a:1", "c:2"]);
    }
}
