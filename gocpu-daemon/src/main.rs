//! `gocpu`: the node daemon's command line.
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gocpu_daemon::{config::Config, daemon};

/// Always-on eBPF daemon explaining where Go processes' CPU time goes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            .context("gocpu failed")
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
