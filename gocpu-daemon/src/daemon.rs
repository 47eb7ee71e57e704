//! Start-up and shutdown: wires discovery, probes, ingest, the model and the API together.
use std::{
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::Duration,
};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    api::{self, AppState},
    config::Config,
    discovery::{
        Discovery,
        cgroup::PodNames,
        procfs::{Clock, ProcError, ProcFs},
    },
    ingest::{Ingest, Shared, tasks},
    metrics,
    model::{DaemonStats, Model},
    preflight::Report,
    probes::{
        ProbeError, events,
        loader::{HostSetup, KernelProbes},
        manager::ProbeManager,
        tracefs,
    },
};

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel side could not be set up.
    #[error(transparent)]
    Probes(#[from] ProbeError),
    /// Procfs is unusable.
    #[error(transparent)]
    Procfs(#[from] ProcError),
    /// The API-server pod lookup is enabled but misconfigured.
    #[error(transparent)]
    Kube(#[from] crate::discovery::kube::KubeError),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    /// A capability or kernel feature the daemon needs is missing (the report says how to grant it).
    #[error("cannot start: {}", .0.fatal_text())]
    Preflight(Box<crate::preflight::Report>),
}

/// Longest pause between two governor runs. They run sooner when a governor is due or a process
/// is newly tracked; this is only a backstop, and every run is a wake-up on the observed
/// program's CPUs (a spinning runtime lock holder preempted costs it far more than our run).
const GOVERN_PERIOD: Duration = Duration::from_secs(1);

/// Lifecycle events buffered between the perf readers and ingest.
const EVENT_QUEUE: usize = 4096;

/// Runs the daemon until `stop` resolves, then shuts down cleanly: every probe detached, every
/// BPF object released.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    // Bind first: a port conflict should fail before any probe is attached.
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.listen,
                source,
            })?;
    let local = listener.local_addr().map_err(DaemonError::Serve)?;

    raise_nofile_limit();
    let report = preflight(&config)?;
    let host = HostSetup {
        kernel: report.kernel,
        tracefs: report
            .tracefs
            .as_ref()
            .map(|t| t.path.clone())
            .unwrap_or_else(|| tracefs::MOUNT_POINT.into()),
        uprobe_path: report.uprobes.path,
        bpf_stats: report.bpf_stats,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut pods = PodNames::new(&config.kubernetes.container_log_dir, Duration::from_secs(5));
    if config.kubernetes.api_server {
        let (api, task) = crate::discovery::kube::spawn(&config.kubernetes, stop_rx.clone())?;
        pods = pods.with_api(api);
        tasks.push(task);
    }
    let procfs = ProcFs::new(&config.discovery.proc_root);
    let clock = Clock::read(&procfs)?;
    let mut kernel = KernelProbes::load(&config, &host)?;
    let event_array = kernel.take_events().ok_or_else(|| ProbeError::Tracefs {
        reason: "event array already taken".into(),
    })?;
    let logger = kernel.take_logger();
    let manager = ProbeManager::new(kernel, config.limits.max_processes)?;
    let loss = Arc::new(events::EventLoss::default());
    let shared = Arc::new(Shared {
        discovery: Discovery::new(procfs, config.discovery.binary_cache_entries),
        manager: Mutex::new(manager),
        model: RwLock::new(Model::default()),
        stats: DaemonStats::default(),
        loss: Arc::clone(&loss),
        clock,
        pods: Mutex::new(pods),
        govern_now: Default::default(),
        preflight: report,
        config,
    });

    let rx = events::spawn_readers(
        event_array,
        shared.config.ingest.perf_buffer_pages,
        loss,
        EVENT_QUEUE,
    )?;
    if let Some(logger) = logger {
        tasks.push(tokio::spawn(forward_ebpf_logs(logger, stop_rx.clone())));
    }

    let ingest = Ingest::new(Arc::clone(&shared));
    {
        // Exec events queue up meanwhile; the first scan admits everything already running.
        let ing = ingest.clone();
        let sh = Arc::clone(&shared);
        let rescan = Duration::from_secs(sh.config.discovery.rescan_interval_seconds);
        let poll = Duration::from_millis(sh.config.ingest.poll_interval_ms);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let first = ing.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || {
                first.rescan();
                first.poll();
            })
            .await
            {
                tracing::error!(error = %e, "initial scan panicked");
            }
            sh.stats.ready.store(true, Ordering::Release);
            tracing::info!(processes = sh.model().len(), "initial scan done; ready");
            if sh.config.probes.budget.calibrate {
                let cal = ing.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || cal.calibrate()).await {
                    tracing::error!(error = %e, "calibration panicked");
                }
            }
            let lifecycle = tokio::spawn(tasks::lifecycle(ing.clone(), rx, stop.clone()));
            let rescans = tokio::spawn(tasks::every(
                rescan,
                ing.clone(),
                Ingest::rescan,
                stop.clone(),
            ));
            let gov = (ing.clone(), stop.clone());
            let governs =
                tokio::task::spawn_blocking(move || tasks::govern(gov.0, GOVERN_PERIOD, gov.1));
            let polls = tokio::spawn(tasks::every(poll, ing, Ingest::poll, stop));
            let _ = tokio::join!(lifecycle, rescans, governs, polls);
        }));
    }

    let registry = Arc::new(metrics::registry(Arc::clone(&shared)));
    let app = api::router(AppState {
        shared: Arc::clone(&shared),
        registry,
    });
    tracing::info!(%local, "serving /metrics and the API");
    let sh = Arc::clone(&shared);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        sh.govern_now.notify(); // The governor thread sees the stop now, not at its next run.
    });
    let served = serve.await.map_err(DaemonError::Serve);

    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            tracing::warn!("a task did not stop within 5 s");
        }
    }
    shared.manager().shutdown();
    tracing::info!("all probes detached");
    served
}

async fn forward_ebpf_logs(
    logger: aya_log::EbpfLogger<&'static dyn log::Log>,
    mut stop: watch::Receiver<bool>,
) {
    // SAFETY: the logger owns its ring buffer fd and keeps it open until dropped with the AsyncFd.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            let e: std::io::Error = e.into();
            tracing::warn!(error = %e, "cannot poll eBPF log buffer");
            return;
        }
    };
    loop {
        tokio::select! {
            g = fd.readable_mut() => match g {
                Ok(mut g) => {
                    g.get_inner_mut().flush();
                    g.clear_ready();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "eBPF log buffer poll failed");
                    return;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// Makes tracefs available, finds where the daemon runs, checks capabilities and kernel features
/// (trying what it can) and says exactly what is missing and how to grant it; fails start-up only
/// when the kernel side cannot work at all, with the report for `main` to print once.
fn preflight(config: &Config) -> Result<Report, DaemonError> {
    use crate::preflight::{Inputs, Placement, Severity, check};
    let proc_root = &config.discovery.proc_root;
    let placement = Placement::gather(proc_root).classify();
    let report = check(&Inputs::gather(
        proc_root,
        std::path::Path::new("/sys"),
        tracefs::prepare(),
        placement,
        &config.probes,
    ));
    if report.is_fatal() {
        return Err(DaemonError::Preflight(Box::new(report)));
    }
    tracing::info!(
        environment = report.placement.environment.as_str(),
        evidence = %report.placement.evidence.join("; "),
        "where gocpu runs"
    );
    tracing::info!(%report, "preflight");
    for f in &report.findings {
        match f.severity {
            Severity::Fatal | Severity::Degraded => {
                tracing::warn!(problem = %f.problem, fix = %f.fix, "preflight")
            }
            Severity::Info => tracing::info!(problem = %f.problem, fix = %f.fix, "preflight"),
        }
    }
    if let Ok(node) = std::env::var("NODE_NAME") {
        tracing::info!(%node, "running on node");
    }
    Ok(report)
}

/// Cached Go binaries keep their file open (pread, never mmap); lift the soft descriptor limit to
/// the hard one so a busy node cannot run the daemon out of descriptors.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write into / read from for both calls.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if !ok {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise RLIMIT_NOFILE");
    }
}
