//! Shared harness for the daemon's root integration tests: runs the real `gocpu` binary.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

pub mod metrics;
pub mod prometheus;
pub mod truth;

use gocpu_testkit::{
    http,
    process::{KillOnDrop, free_port, wait_for},
};

/// Root tests load BPF and compare system-wide BPF state: one at a time within this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the per-binary serialization lock (recovering from a failed test).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running daemon.
pub struct Daemon {
    pub addr: SocketAddr,
    child: Option<KillOnDrop>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `gocpu` with the embedded default overlaid by `extra_yaml` and a free port; waits
    /// until /readyz answers 200.
    pub fn start(extra_yaml: &str) -> Daemon {
        Self::start_wrapped(extra_yaml, &[])
    }

    /// As [`Daemon::start`], through the command `prefix` (which must end by exec'ing its
    /// arguments, so that the child is the daemon itself): `unshare`, `capsh`, `sh -c`.
    pub fn start_wrapped(extra_yaml: &str, prefix: &[String]) -> Daemon {
        Self::start_full(5, extra_yaml, prefix)
    }

    /// As [`Daemon::start`], with a report window of `window_seconds`.
    pub fn start_window(window_seconds: u64, extra_yaml: &str) -> Daemon {
        Self::start_full(window_seconds, extra_yaml, &[])
    }

    fn start_full(window_seconds: u64, extra_yaml: &str, prefix: &[String]) -> Daemon {
        gocpu_testkit::require_root("the daemon integration tests");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cfg = dir.path().join("gocpu.yaml");
        std::fs::write(
            &cfg,
            format!(
                "ingest:\n  poll_interval_ms: 200\n  window_seconds: {window_seconds}\n\
                 discovery:\n  rescan_interval_seconds: 2\n  linger_seconds: 1\n{extra_yaml}"
            ),
        )
        .unwrap();
        let log = dir.path().join("gocpu.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_gocpu"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_gocpu")),
        };
        let child = KillOnDrop(
            cmd.arg("--listen")
                .arg(addr.to_string())
                .arg("--config")
                .arg(&cfg)
                .env("RUST_LOG", "info,gocpu_daemon=debug")
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap(),
        );
        let mut d = Daemon {
            addr,
            child: Some(child),
            log,
            _dir: dir,
        };
        let ready = wait_for_opt(Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.0.try_wait()) {
                panic!("gocpu exited during start-up ({status}):\n{}", d.log_text());
            }
            http::get(addr, "/readyz").ok().filter(|r| r.status == 200)
        });
        assert!(
            ready.is_some(),
            "gocpu not ready in 60 s:\n{}",
            d.log_text()
        );
        d
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.pid())
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's log lines that name `pid`: what it did about that process.
    pub fn log_about(&self, pid: u32) -> String {
        let needle = format!("pid={pid}");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> http::Response {
        http::get(self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_text()))
    }

    /// GET `path` as JSON, asserting status 200.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.body, self.log_text());
        serde_json::from_str(&r.body).unwrap()
    }

    /// The pid's entry in /processes, if listed.
    pub fn listed(&self, pid: u32) -> Option<serde_json::Value> {
        let list = self.json("/processes");
        list["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .cloned()
    }

    /// Waits until `pid` is listed.
    pub fn wait_listed(&self, pid: u32) -> serde_json::Value {
        wait_for_opt(Duration::from_secs(20), || self.listed(pid))
            .unwrap_or_else(|| panic!("pid {pid} never listed:\n{}", self.log_text()))
    }

    /// Sends SIGTERM and waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        child.signal(15);
        let (_, status) = child.wait_output(Duration::from_secs(30));
        let log = self.log_text();
        assert!(
            status.success(),
            "gocpu exited with {status} after SIGTERM:\n{log}"
        );
        log
    }
}

fn wait_for_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A command prefix for [`Daemon::start_wrapped`]: a private mount namespace (nothing mounted in
/// it reaches the host), the shell commands `setup` run there, then the daemon exec'd through
/// `launcher` (empty, or e.g. `capsh --drop=... -- -c 'exec "$0" "$@"'`), keeping the pid.
pub fn private_namespace(setup: &str, launcher: &str) -> Vec<String> {
    vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!("{setup} exec {launcher} \"$0\" \"$@\""),
    ]
}

/// `capsh` as a [`private_namespace`] launcher, dropping `caps` (libcap names, comma-separated)
/// from the bounding set, which for root is what its exec keeps.
pub fn capsh_dropping(caps: &str) -> String {
    format!("capsh --drop={caps} -- -c 'exec \"$0\" \"$@\"'")
}

/// The pingpong workload built with Go 1.25, started with `args`.
pub fn pingpong(args: &[&str]) -> KillOnDrop {
    let bin = gocpu_testkit::build(
        &gocpu_testkit::go_bin_series("1.25"),
        &gocpu_testkit::workload("pingpong"),
        gocpu_testkit::Variant::Default,
    );
    spawn(&bin, args)
}

/// Waits (up to 15 s) until `pid`'s runtime.futex, usleep and mcall calls have all been counted:
/// governed uprobes count only while attached.
pub fn wait_runtime_calls(d: &Daemon, pid: u32) {
    wait(
        "runtime.futex, usleep and mcall counted",
        Duration::from_secs(15),
        || {
            let t = d.json(&format!("/processes/{pid}"))["totals"].clone();
            ["futex_calls", "usleep_calls", "mcall_calls"]
                .iter()
                .all(|k| t[k].as_u64().unwrap_or(0) > 0)
                .then_some(())
        },
    );
}

/// Starts a built Go workload with `args`.
pub fn spawn(binary: &std::path::Path, args: &[&str]) -> KillOnDrop {
    KillOnDrop::spawn(Command::new(binary).args(args).env("GOTOOLCHAIN", "local"))
}

/// Re-export for tests.
pub fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, timeout, f)
}

/// The CPU class with the largest share in a `/processes/{pid}` document.
pub fn dominant_class(v: &serde_json::Value) -> String {
    v["cpu"]["classes"]
        .as_object()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a.1["share"]
                .as_f64()
                .unwrap()
                .total_cmp(&b.1["share"].as_f64().unwrap())
        })
        .map(|(k, _)| k.clone())
        .unwrap()
}

/// The function names of hotspot table `table` (`by_self`, `by_cumulative`) in a
/// `/processes/{pid}/hotspots` document.
pub fn hotspot_functions(v: &serde_json::Value, table: &str) -> Vec<String> {
    v["hotspots"][table]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["function"].as_str().unwrap().to_string())
        .collect()
}
