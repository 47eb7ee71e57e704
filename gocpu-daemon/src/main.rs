//! `gocpu`: the node daemon's command line.
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gocpu_daemon::{config::Config, daemon};

/// Always-on eBPF daemon explaining where Go processes' CPU time goes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Instead of running the daemon, ask a running one.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address for the API and /metrics (overrides the config's `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// YAML configuration overlaid on the embedded default (see `--print-default-config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the embedded default configuration, documenting every key, and exit.
    #[arg(long)]
    print_default_config: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print what one Go process is doing: verdict, CPU split, ratios, top hotspots.
    Inspect {
        /// The process id.
        pid: u32,
        /// The daemon's API address.
        #[arg(long, default_value = "127.0.0.1:9477")]
        addr: std::net::SocketAddr,
        /// Window, seconds (default: the daemon's report window).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

/// Errors end the process with one message (and its fix) on stderr and exit status 1: a start-up
/// failure is an answer for the operator, not a crash, so no backtrace is printed even with
/// RUST_BACKTRACE set (panics still print theirs).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gocpu: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Inspect { pid, addr, seconds }) = cli.command {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        let report = rt.block_on(gocpu_daemon::cli::inspect(addr, pid, seconds))?;
        #[allow(clippy::print_stdout)]
        {
            print!("{report}");
        }
        return Ok(());
    }
    if cli.print_default_config {
        // The one intended stdout output of the daemon.
        #[allow(clippy::print_stdout)]
        {
            print!("{}", gocpu_daemon::config::DEFAULT_YAML);
        }
        return Ok(());
    }
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    init_tracing(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        daemon::run(config, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler; only SIGINT stops gocpu");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
