//! `reelflow-bench`: Reelflow's benchmarks, each run beside the peer its
//! capability is measured against (Kafka's producer benchmark, one ffmpeg
//! run per rendition, a plain S3 PUT, nginx, PostgreSQL), printing readable
//! results or, with `--json`, one JSON object with every figure (the
//! peer's included). `scripts/bench.sh` runs them with the real services;
//! BENCHMARKS.md records every run with its exact command.
//!
//! A crate of its own so the product never compiles the benchmarks' clients
//! and generators (tokio-postgres, the traffic generator, the reference).

mod api;
mod dataflow;
mod harness;
mod hls;
mod log;
mod scale;
mod sql;
mod state;
mod transcode;
mod upload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The same allocator, with the same options, as the `reelflow` binary the
// benchmarks stand for.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reelflow's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "reelflow-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append and read throughput of the embedded and Kafka logs, beside
    /// Kafka's own producer benchmark.
    Log(log::LogBenchArgs),
    /// Authenticated catalog reads per second and their latency, on SQLite
    /// and PostgreSQL, with the cost of a password hash.
    Api(api::ApiBenchArgs),
    /// Our one-pass ladder against one ffmpeg run per rendition: CPU and wall
    /// time, and the pipeline's overhead over the bare ffmpeg command.
    Transcode(transcode::TranscodeBenchArgs),
    /// A large tus upload into S3 against a plain PUT to the S3 server, and
    /// the server's peak memory meanwhile.
    Upload(upload::UploadBenchArgs),
    /// The dataflows under realistic playback traffic: records/s per core
    /// from the embedded log and Kafka, freshness at a fixed rate, 2
    /// workers against 1, beside PostgreSQL computing the same views in SQL.
    Dataflow(dataflow::DataflowBenchArgs),
    /// Hot HLS segments under wrk, beside nginx serving the same files, and
    /// beacon batches accepted per second (acknowledged by the log).
    Hls(hls::HlsBenchArgs),
    /// The dataflow cluster as 1, 2 and 3 processes started the StatefulSet
    /// way: the time to rebuild the views from a log in Kafka, and records/s.
    Scale(scale::ScaleBenchArgs),
    /// A point query on video_stats and a top 10 of trending over the
    /// PostgreSQL protocol, beside PostgreSQL answering them from tables.
    Sql(sql::SqlBenchArgs),
    /// Whether the views' state lives for years: memory after 10 M and
    /// 100 M records of log, restart from a snapshot beside a full replay,
    /// what a snapshot costs and the freshness while one is written.
    State(state::StateBenchArgs),
}

fn main() -> ExitCode {
    reelflow_serve::process::start();
    let cli = Cli::parse();
    reelflow_serve::process::block_on(run(cli.command))
}

/// Runs the benchmark `$module` with `$args` and prints its report.
macro_rules! bench {
    ($module:ident, $args:expr) => {{
        let args = $args;
        let json = args.json;
        let report = $module::run(args).await?;
        harness::print_report(json, &report, $module::render)
    }};
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hls(args) => bench!(hls, args),
        Command::Sql(args) => bench!(sql, args),
        Command::State(args) => bench!(state, args),
        Command::Scale(args) => bench!(scale, args),
        Command::Dataflow(args) => bench!(dataflow, args),
        Command::Upload(args) => bench!(upload, args),
        Command::Transcode(args) => bench!(transcode, args),
        Command::Api(args) => bench!(api, args),
        Command::Log(args) => bench!(log, args),
    }
}
