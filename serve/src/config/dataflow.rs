//! `[dataflow]`: the timely cluster this process belongs to and how its
//! views are kept.
//!
//! How the views are kept (history, ticks, idle checks) is the dataflows'
//! business: the defaults here are read from [`DataflowOptions::default`]
//! and [`SourceOptions::default`], so there is one default, which the
//! config only spells in whole seconds and milliseconds.
//!
//! [`DataflowOptions::default`]: reelflow_dataflows::DataflowOptions
//! [`SourceOptions::default`]: reelflow_dataflows::SourceOptions

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use reelflow_dataflows::{ClusterConfig, DataflowOptions};
use serde::{Deserialize, Serialize};

use super::Config;

/// The dataflows: the timely cluster and how the views are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataflowConfig {
    /// Timely workers per process; 0 means one per core.
    pub workers: usize,
    /// This process's index among the peers.
    pub process: usize,
    /// `host:port` of every process of the cluster.
    pub peers: Vec<String>,
    /// A file listing the peers, one `host:port` per line.
    pub hostfile: Option<PathBuf>,
    /// StatefulSet peer address with `{i}` for the ordinal.
    pub statefulset_peers: Option<String>,
    /// Processes of the StatefulSet.
    pub replicas: usize,
    /// Where `reelflow dataflow` serves views and metrics.
    pub listen: SocketAddr,
    /// Seconds of past times that stay readable with `as_of`.
    pub history_s: u64,
    /// How far an idle partition's frontier trails the clock, ms.
    pub idle_grace_ms: u64,
    /// How often an idle partition is checked against its high watermark,
    /// ms: what an idle process spends its CPU on, and how soon the views
    /// pass a moment nothing happened in.
    pub idle_check_ms: u64,
    /// Records' times are rounded up to a multiple of this, ms: the
    /// views' granularity, which their work is counted in.
    pub tick_ms: u64,
    /// The same for records older than the retained history, ms.
    pub catch_up_tick_ms: u64,
    /// Seconds of log time a playback session stays open without records
    /// before it closes and is folded into the figures.
    pub session_idle_s: u64,
    /// Whether to start from the latest snapshot in object storage and
    /// write new ones (process 0 of the cluster writes them).
    pub snapshots: bool,
    /// Seconds between snapshots.
    pub snapshot_interval_s: u64,
    /// Snapshots kept in object storage; older ones are deleted.
    pub snapshots_kept: usize,
}

impl Default for DataflowConfig {
    fn default() -> Self {
        let options = DataflowOptions::default();
        Self {
            workers: 0,
            process: 0,
            peers: Vec::new(),
            hostfile: None,
            statefulset_peers: None,
            replicas: 1,
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            history_s: options.history.as_secs(),
            idle_grace_ms: millis(options.source.idle_grace),
            idle_check_ms: millis(options.source.idle_check),
            tick_ms: millis(options.source.tick),
            catch_up_tick_ms: millis(options.source.catch_up_tick),
            session_idle_s: options.windows.session_idle.as_secs(),
            snapshots: true,
            snapshot_interval_s: 300,
            snapshots_kept: 3,
        }
    }
}

/// A default duration in whole milliseconds (the dataflows' defaults are
/// milliseconds to seconds, far from `u64::MAX`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("a default duration fits in u64 milliseconds")
}

impl Config {
    /// The dataflow cluster this process belongs to. A StatefulSet pod
    /// takes its index from its name (`$HOSTNAME`).
    pub fn dataflow_cluster(&self) -> anyhow::Result<ClusterConfig> {
        let d = &self.dataflow;
        let workers = if d.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            d.workers
        };
        let cluster = if let Some(template) = &d.statefulset_peers {
            if d.replicas == 0 {
                bail!("dataflow.replicas is 0: set it (REELFLOW_DATAFLOW_REPLICAS) to the StatefulSet's replica count");
            }
            let pod = std::env::var("HOSTNAME")
                .context("dataflow.statefulset_peers is set but $HOSTNAME (the pod name) is not")?;
            ClusterConfig::statefulset(workers, &pod, d.replicas, template)?
        } else if let Some(file) = &d.hostfile {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading dataflow.hostfile {}", file.display()))?;
            ClusterConfig::explicit(workers, d.process, ClusterConfig::parse_hostfile(&text))?
        } else {
            ClusterConfig::explicit(workers, d.process, d.peers.clone())?
        };
        Ok(cluster)
    }

    /// How to run the dataflows.
    pub fn dataflow_options(&self) -> anyhow::Result<DataflowOptions> {
        let mut options = DataflowOptions {
            cluster: self.dataflow_cluster()?,
            history: Duration::from_secs(self.dataflow.history_s),
            partitions: self.log.partitions,
            ..Default::default()
        };
        let ms = Duration::from_millis;
        options.source.idle_grace = ms(self.dataflow.idle_grace_ms);
        options.source.idle_check = ms(self.dataflow.idle_check_ms);
        options.source.tick = ms(self.dataflow.tick_ms);
        options.source.catch_up_tick = ms(self.dataflow.catch_up_tick_ms);
        options.windows.session_idle = Duration::from_secs(self.dataflow.session_idle_s);
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigArgs;

    #[test]
    fn the_dataflows_ticks_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("reelflow.toml");
        std::fs::write(
            &file,
            "[dataflow]\nidle_check_ms = 20\ntick_ms = 50\ncatch_up_tick_ms = 5000\nsession_idle_s = 600\n",
        )
        .expect("write");
        let args = ConfigArgs {
            file: Some(file.clone()),
            ..Default::default()
        };
        let options = Config::load(&args).expect("valid").dataflow_options().expect("options");
        assert_eq!(options.windows.session_idle, Duration::from_secs(600));
        let source = options.source;
        assert_eq!(source.idle_check, Duration::from_millis(20));
        assert_eq!(source.tick, Duration::from_millis(50));
        assert_eq!(source.catch_up_tick, Duration::from_secs(5));

        for (text, named) in [
            ("tick_ms = 0", "dataflow.tick_ms"),
            ("idle_check_ms = 0", "dataflow.idle_check_ms"),
            ("tick_ms = 100\ncatch_up_tick_ms = 50", "dataflow.catch_up_tick_ms"),
            ("session_idle_s = 30", "dataflow.session_idle_s"),
            ("snapshot_interval_s = 1", "dataflow.snapshot_interval_s"),
            ("snapshots_kept = 1", "dataflow.snapshots_kept"),
        ] {
            std::fs::write(&file, format!("[dataflow]\n{text}\n")).expect("write");
            let err = format!("{:#}", Config::load(&args).expect_err(text));
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    /// Issue 28: `history` was 60 s in `DataflowOptions` and 300 s here.
    /// Whatever the config leaves at its default, the dataflows get their
    /// own default back.
    #[test]
    fn the_default_config_runs_the_dataflows_with_their_defaults() {
        let config = Config::default();
        let got = config.dataflow_options().expect("options");
        let want = DataflowOptions::default();
        assert_eq!(got.history, want.history);
        assert_eq!(got.windows.session_idle, want.windows.session_idle);
        assert_eq!(got.partitions, want.partitions);
        assert_eq!(got.peek_timeout, want.peek_timeout);
        assert_eq!(
            (
                got.source.idle_grace,
                got.source.idle_check,
                got.source.tick,
                got.source.catch_up_tick
            ),
            (
                want.source.idle_grace,
                want.source.idle_check,
                want.source.tick,
                want.source.catch_up_tick
            ),
        );
    }
}
