//! The `reelflow` command.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelflow_serve::accounts::Role;
use reelflow_serve::app;
use reelflow_serve::auth::{Keyring, password};
use reelflow_serve::config::{Config, ConfigArgs};
use reelflow_serve::db::Db;

// The dataflows allocate and free many small rows per event; mimalloc's
// thread-local free lists take a fifth off the time glibc's malloc spends
// there (`reelflow-bench dataflow`, BENCHMARKS.md). Its options are set in
// `reelflow_serve::allocator`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the HTTP API only (stateless: run as many as you like); the
    /// transcoders and the dataflows run elsewhere, and `/v1/sql` and
    /// `/v1/views` are forwarded to `sql.upstream`.
    Serve,
    /// Print the effective configuration (secrets masked).
    Config,
    /// Run transcoders: members of the consumer group on reelflow.uploads.
    Transcode,
    /// Run one process of the dataflow cluster that keeps the live views,
    /// serving them, /metrics and /readyz on dataflow.listen.
    Dataflow {
        #[command(subcommand)]
        action: Option<DataflowCommand>,
    },
    /// Run one SQL statement over the live views and print the answer; a
    /// SUBSCRIBE prints its changes as they happen.
    Sql(reelflow_serve::client::SqlArgs),
    /// Upload a video file (tus, resumable) and optionally wait until it
    /// is processed.
    Upload(reelflow_serve::client::UploadArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        /// The account's email (its login name).
        #[arg(long)]
        email: String,
        /// Make it an admin (how the first admin comes to be).
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// Role: viewer, creator or admin [default: creator].
        #[arg(long)]
        role: Option<reelflow_serve::accounts::Role>,
        /// Name shown to others [default: the part of the email before @].
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DataflowCommand {
    /// Fold the log since the latest snapshot into a new snapshot in
    /// object storage, and exit (what process 0 of the cluster does every
    /// dataflow.snapshot_interval_s, and when it stops).
    Snapshot,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Put a new signing key in use (restart the servers afterwards); tokens
    /// signed with the previous key stay valid until they expire.
    RotateKey,
}

fn main() -> ExitCode {
    reelflow_serve::process::start();
    let cli = Cli::parse();
    // State on disk (the accounts database and its WAL, the embedded log,
    // objects, staged chunks, transcoding jobs) is the service's alone:
    // everything this process and its ffmpeg children create is 0600/0700.
    reelflow_serve::platform::keep_state_private();
    reelflow_serve::process::block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config => {
            let config = Config::load(&cli.config)?;
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Up => up(Config::load(&cli.config)?).await,
        Command::Serve => serve(Config::load(&cli.config)?).await,
        Command::Dataflow { action: None } => dataflow(Config::load(&cli.config)?).await,
        Command::Dataflow {
            action: Some(DataflowCommand::Snapshot),
        } => {
            let config = Config::load(&cli.config)?;
            let written = reelflow_serve::dataflow::snapshot_now(&config).await?;
            let m = &written.manifest;
            println!(
                "snapshot {} written: {} bytes, covering the log before {} ({} records folded in {} ms, stored in {} ms)",
                m.sequence,
                m.bytes(),
                reelflow_dataflows::format_timestamp(m.frontier as i64),
                written.records,
                written.fold.as_millis(),
                written.write.as_millis()
            );
            Ok(())
        }
        Command::Transcode => transcode(Config::load(&cli.config)?).await,
        Command::Sql(args) => reelflow_serve::client::sql(args).await,
        Command::Upload(args) => reelflow_serve::client::upload(args).await,
        Command::User(UserCommand::Create {
            email,
            admin,
            role,
            display_name,
        }) => {
            let config = Config::load(&cli.config)?;
            let role = if admin {
                Role::Admin
            } else {
                role.unwrap_or(Role::Creator)
            };
            create_user(&config, &email, role, display_name).await
        }
        Command::Auth(AuthCommand::RotateKey) => {
            let config = Config::load(&cli.config)?;
            let lifetime = std::time::Duration::from_secs(config.auth.access_ttl_s);
            let kid = Keyring::rotate(&config.keys_file(), lifetime)
                .with_context(|| format!("rotating keys in {}", config.keys_file().display()))?;
            println!(
                "new signing key {kid} in {}; restart the servers to sign with it",
                config.keys_file().display()
            );
            Ok(())
        }
    }
}

async fn create_user(config: &Config, email: &str, role: Role, display_name: Option<String>) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    reelflow_serve::validate::email(&mut errors, "email", email);
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if let Some(msg) = password::check_policy(&password) {
        errors.push(reelflow_serve::problem::FieldError::new("password", msg));
    }
    if let Some(e) = errors.first() {
        anyhow::bail!("{} {}", e.field, e.message);
    }
    let db = Db::open(&config.database_url()).await?;
    let name = display_name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    let hash = password::hash(password).await?;
    let user = reelflow_serve::accounts::create(&db, email, hash, role, &name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("created {} account {} ({})", role.as_str(), user.email, user.id);
    Ok(())
}

async fn transcode(config: Config) -> anyhow::Result<()> {
    use reelflow_serve::transcoders::{self, Transcoders};
    let platform = reelflow_serve::platform::Platform::open(&config).await?;
    let workers = Transcoders::start(&config, &platform);
    let ops = match config.transcode.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (transcode.listen)"))?;
            let addr = listener.local_addr()?;
            let router = transcoders::router(&config, platform.clone(), workers.stats());
            println!(
                "transcoding with {} worker(s); health and metrics at http://{addr}/metrics",
                config.transcode.workers
            );
            Some(tokio::spawn(async move { axum::serve(listener, router).await }))
        }
        None => {
            println!("transcoding with {} worker(s)", config.transcode.workers);
            None
        }
    };
    shutdown_signal().await;
    tracing::info!("stopping: the running jobs finish first (a job cut short is done again by another transcoder)");
    workers.stop().await;
    if let Some(ops) = ops {
        ops.abort();
    }
    Ok(())
}

async fn dataflow(config: Config) -> anyhow::Result<()> {
    // A panicking worker or network thread means the cluster is broken (a
    // peer died, say): exit, so the orchestrator restarts the process and
    // the cluster re-forms, rather than serving views that never advance.
    // A SQL statement that panics fails alone (its error goes to its
    // caller), so the SQL threads are spared.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if reelflow_sql::threads::is_sql_thread() {
            return;
        }
        // Stopping: the peers stop too, and their workers going away is
        // no reason to cut short the last snapshot.
        if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        eprintln!("error: a dataflow thread panicked; exiting so the cluster can re-form");
        std::process::exit(70);
    }));
    // The SQLite accounts database lives there unless database.url says otherwise.
    reelflow_serve::platform::private_dir(&config.data_dir)?;
    let log = reelflow_serve::platform::open_log(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.dataflow.listen)
        .await
        .with_context(|| format!("listening on {}", config.dataflow.listen))?;
    let addr = listener.local_addr()?;
    let cluster = config.dataflow_cluster()?;
    let (dataflows, snapshots) = reelflow_serve::dataflow::start(&config, log).await?;
    let client = dataflows.client();
    // SQL for Reelflow's accounts: the accounts database and the token keys
    // are the ones `reelflow serve` uses, checked by the same gate.
    let gate = reelflow_serve::auth::Gate::open(&config).await?;
    let engine = reelflow_sql::SqlEngine::new(client.clone(), config.sql.limits())?;
    let pg_listener = tokio::net::TcpListener::bind(config.sql.pgwire_listen)
        .await
        .with_context(|| format!("listening for the PostgreSQL protocol on {}", config.sql.pgwire_listen))?;
    let pg_addr = pg_listener.local_addr()?;
    let accounts = std::sync::Arc::new(reelflow_serve::sql::Accounts {
        db: gate.db.clone(),
        limits: gate.limits.clone(),
    });
    let pg = reelflow_sql::PgServer::with_tls(engine.clone(), accounts, config.sql.pg_tls()?);
    let _pgwire = tokio::spawn(pg.serve(pg_listener));
    let sql = reelflow_serve::sql::SqlService {
        engine,
        gate,
        row_limit: config.sql.http_row_limit,
    };
    println!(
        "dataflow process {} of {} ({} workers each) serving views at http://{addr}/v1/views; SQL: psql -h {} -p {}",
        cluster.process,
        cluster.processes(),
        cluster.workers,
        pg_addr.ip(),
        pg_addr.port()
    );
    let routes = reelflow_serve::dataflow::SnapshotRoutes::new(&config, snapshots.as_ref()).await?;
    let router = reelflow_serve::dataflow::router(client, routes).merge(reelflow_serve::sql::router(sql));
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            shutdown_signal().await;
            STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await
        .context("serving HTTP")?;
    if let Some(snapshots) = snapshots {
        snapshots.stop().await;
    }
    // The other processes of the cluster may be gone already; do not wait
    // for their workers.
    drop(dataflows);
    tracing::info!("dataflow process stopped");
    Ok(())
}

/// Set once `reelflow dataflow` was told to stop.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn up(config: Config) -> anyhow::Result<()> {
    let mut state = reelflow_serve::state::open(config.clone()).await?;
    let (dataflows, snapshots) = reelflow_serve::dataflow::start(&config, state.platform.log.clone()).await?;
    state.views = Some(dataflows.client());
    let engine = reelflow_sql::SqlEngine::new(dataflows.client(), config.sql.limits())?;
    state.sql = Some(engine.clone());
    let pg_listener = tokio::net::TcpListener::bind(config.sql.pgwire_listen)
        .await
        .with_context(|| format!("listening for the PostgreSQL protocol on {}", config.sql.pgwire_listen))?;
    let pg_addr = pg_listener.local_addr()?;
    let accounts = std::sync::Arc::new(reelflow_serve::sql::Accounts {
        db: state.db.clone(),
        limits: state.limits.clone(),
    });
    let pg = reelflow_sql::PgServer::with_tls(engine, accounts, config.sql.pg_tls()?);
    let _pgwire = tokio::spawn(pg.serve(pg_listener));
    let transcoders = reelflow_serve::transcoders::Transcoders::start(&config, &state.platform);
    let sql = format!("SQL: psql -h {} -p {} -U <email>", pg_addr.ip(), pg_addr.port());
    serve_http(state, "Reelflow is up", &sql).await?;
    drop(transcoders);
    if let Some(snapshots) = snapshots {
        snapshots.stop().await;
    }
    dataflows.shutdown();
    tracing::info!("reelflow stopped");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let state = reelflow_serve::state::open(config.clone()).await?;
    let sql = match &config.sql.upstream {
        Some(upstream) => format!("/v1/sql is answered by {upstream}"),
        None => "no sql.upstream: /v1/sql answers 503".to_string(),
    };
    serve_http(state, "Reelflow API is up", &sql).await?;
    tracing::info!("reelflow serve stopped");
    Ok(())
}

/// Runs the API with its background tasks (the outbox publisher, the
/// status follower, the upload sweeper) until Ctrl-C or SIGTERM.
async fn serve_http(state: reelflow_serve::AppState, banner: &str, sql: &str) -> anyhow::Result<()> {
    let config = state.config.clone();
    let _background = reelflow_serve::background::spawn_background(&state);
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        log = state.platform.log.backend(),
        storage = state.platform.store.backend(),
        "{banner}"
    );
    println!(
        "{banner} at http://{addr}/ (open it for the web console; data in {}; {sql})",
        config.data_dir.display()
    );
    let limits = config.http.listen_limits();
    if let Some(metrics_addr) = config.http.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("listening for /metrics on {metrics_addr}"))?;
        let router = reelflow_serve::ops::metrics_router(state.clone());
        tokio::spawn(reelflow_serve::listener::serve(
            metrics,
            router,
            limits,
            std::future::pending(),
        ));
    }
    reelflow_serve::listener::serve(listener, app(state), limits, shutdown_signal())
        .await
        .context("serving HTTP")
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
