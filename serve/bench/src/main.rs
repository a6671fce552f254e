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
mod transcode;
mod upload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
}

fn main() -> ExitCode {
    reelflow_serve::allocator::configure();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("REELFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hls(args) => {
            let json = args.json;
            let report = hls::run(args).await?;
            harness::print_report(json, &report, hls::render)
        }
        Command::Sql(args) => {
            let json = args.json;
            let report = sql::run(args).await?;
            harness::print_report(json, &report, sql::render)
        }
        Command::Scale(args) => {
            let json = args.json;
            let report = scale::run(args).await?;
            harness::print_report(json, &report, scale::render)
        }
        Command::Dataflow(args) => {
            let json = args.json;
            let report = dataflow::run(args).await?;
            harness::print_report(json, &report, dataflow::render)
        }
        Command::Upload(args) => {
            let json = args.json;
            let report = upload::run(args).await?;
            harness::print_report(json, &report, upload::render)
        }
        Command::Transcode(args) => {
            let json = args.json;
            let report = transcode::run(args).await?;
            harness::print_report(json, &report, transcode::render)
        }
        Command::Api(args) => {
            let json = args.json;
            let report = api::run(args).await?;
            harness::print_report(json, &report, api::render)
        }
        Command::Log(args) => {
            let json = args.json;
            let report = log::run(args).await?;
            harness::print_report(json, &report, log::render)
        }
    }
}
