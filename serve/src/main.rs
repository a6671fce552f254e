//! The `reelflow` command.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelflow_serve::bench::log::LogBenchArgs;
use reelflow_serve::config::{Config, ConfigArgs};
use reelflow_serve::platform::Platform;
use reelflow_serve::{AppState, app};
use tracing_subscriber::EnvFilter;

/// Reelflow: a video platform where everything is an event and every number
/// is a live SQL view.
#[derive(Debug, Parser)]
#[command(name = "reelflow", version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process on the embedded default.
    Up,
    /// Print the effective configuration (secrets masked).
    Config,
    /// Run a benchmark.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Append and read throughput of the embedded and Kafka logs, beside
    /// Kafka's own producer benchmark.
    Log(LogBenchArgs),
}

fn main() -> ExitCode {
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what we were doing, and why it failed.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config => {
            let config = Config::load(&cli.config)?;
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Up => up(Config::load(&cli.config)?).await,
        Command::Bench(Bench::Log(args)) => {
            let json = args.json;
            let report = reelflow_serve::bench::log::run(args).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", reelflow_serve::bench::log::render(&report));
            }
            Ok(())
        }
    }
}

async fn up(config: Config) -> anyhow::Result<()> {
    let platform = Platform::open(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        log = platform.log.backend(),
        storage = platform.store.backend(),
        "reelflow is up"
    );
    println!(
        "Reelflow is up at http://{addr} (data in {})",
        config.data_dir.display()
    );
    axum::serve(listener, app(AppState { platform }))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("reelflow stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
