//! Independent counts of what gocpu estimates, over the same windows: the ground truth of the
//! accuracy tests (`e2e_accuracy.rs`) and `cargo xtask accuracy`.
//!
//! - Syscalls: `perf stat -p <pid>` on `raw_syscalls:sys_enter` filtered by syscall number, one
//!   perf per syscall: a tracepoint gocpu does not attach to, so that nothing gocpu does to its
//!   own (`syscalls:sys_enter_<name>`) can reach the truth (ARCHITECTURE.md, "Estimates and
//!   their error model"). Also the truth of runtime.futex and runtime.usleep, which make one
//!   futex(2) and one nanosleep(2) each (a storm: 2442 against 2432 a second by a uprobe; 97
//!   against 97).
//! - Uprobe hits: a tracefs `uprobe_events` probe at the same file offset as gocpu's, enabled in
//!   a tracing instance of its own whose buffer is off. The kernel counts every hit of it in
//!   `uprobe_profile` before (not) writing the record, so the count costs no buffer and loses
//!   nothing. Used only where nothing else counts and calls are rare enough for the breakpoint
//!   not to change the program (runtime.mcall of the GC-heavy workload, ~2000 a second).
//! - A program's own count (`ProgramCounter`): where a uprobe would change what it counts. One
//!   at runtime.mcall traps a goroutine ping-pong storm's every park and slows it threefold, and
//!   gocpu's uprobe at the same address shares that trap, so the harness would see neither the
//!   storm's real rate nor what gocpu's own trap does to the periods it measures. The bursty
//!   workload counts its round trips (two parks each, checked against the uprobe before a run).
//!
//! All are sampled in the background with the instant each reading arrived, so that a count
//! over any window `[t0, t1]` is read from the series by interpolation.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use gocpu_daemon::probes::tracefs::tracefs_mounts;

/// A cumulative count sampled over time.
#[derive(Clone, Debug, Default)]
pub struct Series(Vec<(Instant, u64)>);

impl Series {
    /// The count at `t`, interpolated between the readings around it (`None` outside them).
    pub fn at(&self, t: Instant) -> Option<f64> {
        let i = self.0.partition_point(|(at, _)| *at <= t);
        let (t0, c0) = *self.0.get(i.checked_sub(1)?)?;
        let Some(&(t1, c1)) = self.0.get(i) else {
            return (t == t0).then_some(c0 as f64);
        };
        let f = (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64().max(1e-9);
        Some(c0 as f64 + f * (c1 as f64 - c0 as f64))
    }

    /// Events per second over `[t0, t1]`.
    pub fn rate(&self, t0: Instant, t1: Instant) -> Option<f64> {
        let secs = (t1 - t0).as_secs_f64();
        (secs > 0.0).then_some((self.at(t1)? - self.at(t0)?) / secs)
    }
}

/// tracefs: the mounted one, or one mounted for the test in a private directory (a fresh
/// machine has none) and unmounted again at drop.
pub struct Tracefs {
    root: PathBuf,
    own: Option<tempfile::TempDir>,
}

impl Tracefs {
    /// Finds or mounts tracefs.
    pub fn open() -> Tracefs {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounted = tracefs_mounts(&mountinfo).into_iter().next();
        if let Some(root) = mounted {
            return Tracefs { root, own: None };
        }
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tracefs", "nodev"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tracefs failed: {st}");
        Tracefs {
            root: dir.path().to_path_buf(),
            own: Some(dir),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let _ = Command::new("umount").arg(dir.path()).status();
        }
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    writeln!(f, "{line}")
}

/// Always-attached uprobes at given file offsets of one binary, counted by the kernel.
pub struct UprobeTruth {
    tracefs: Arc<Tracefs>,
    group: String,
    /// (label, event name).
    events: Vec<(String, String)>,
    instance: PathBuf,
}

impl UprobeTruth {
    /// Probes `binary` at each `(label, file_offset)`.
    pub fn attach(tracefs: Arc<Tracefs>, binary: &Path, probes: &[(&str, u64)]) -> UprobeTruth {
        let tag = std::process::id();
        let group = format!("gocpu_truth_{tag}");
        let instance = tracefs.path(&format!("instances/{group}"));
        let mut t = UprobeTruth {
            tracefs,
            group,
            events: Vec::new(),
            instance,
        };
        let events = t.tracefs.path("uprobe_events");
        for (label, off) in probes {
            let name = format!("t{tag}_{}", label.replace(['.', '/'], "_"));
            append(
                &events,
                &format!("p:{}/{name} {}:{off:#x}", t.group, binary.display()),
            )
            .unwrap_or_else(|e| panic!("uprobe_events: {e}"));
            t.events.push((label.to_string(), name));
        }
        std::fs::create_dir(&t.instance).unwrap();
        std::fs::write(t.instance.join("tracing_on"), "0").unwrap();
        for (_, name) in &t.events {
            std::fs::write(
                t.instance.join(format!("events/{}/{name}/enable", t.group)),
                "1",
            )
            .unwrap();
        }
        t
    }

    /// Hits so far, by label.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let profile = std::fs::read_to_string(self.tracefs.path("uprobe_profile")).unwrap();
        let mut out = BTreeMap::new();
        for line in profile.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [.., name, hits] = f.as_slice() else {
                continue;
            };
            if let Some((label, _)) = self.events.iter().find(|(_, n)| n == name) {
                out.insert(label.clone(), hits.parse().unwrap_or(0));
            }
        }
        out
    }
}

impl Drop for UprobeTruth {
    fn drop(&mut self) {
        for (_, name) in &self.events {
            let _ = std::fs::write(
                self.instance
                    .join(format!("events/{}/{name}/enable", self.group)),
                "0",
            );
        }
        let _ = std::fs::remove_dir(&self.instance);
        let events = self.tracefs.path("uprobe_events");
        for (_, name) in &self.events {
            let _ = append(&events, &format!("-:{}/{name}", self.group));
        }
    }
}

/// Samples labelled cumulative counts every 50 ms in the background.
pub struct Recorder {
    series: Arc<Mutex<BTreeMap<String, Series>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts sampling `counts`.
    pub fn start(mut counts: impl FnMut() -> BTreeMap<String, u64> + Send + 'static) -> Recorder {
        let series = Arc::new(Mutex::new(BTreeMap::<String, Series>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&series), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let counts = counts();
                let at = Instant::now();
                let mut s = s.lock().unwrap();
                for (label, n) in counts {
                    s.entry(label).or_default().0.push((at, n));
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Recorder {
            series,
            stop,
            thread: Some(thread),
        }
    }

    /// Samples an [`UprobeTruth`]'s hits by label.
    pub fn uprobes(truth: UprobeTruth) -> Recorder {
        Recorder::start(move || truth.counts())
    }

    /// The series of `label` so far.
    pub fn series(&self, label: &str) -> Series {
        self.series
            .lock()
            .unwrap()
            .get(label)
            .cloned()
            .unwrap_or_default()
    }
}

/// A symbol of an ELF binary.
pub struct ElfSymbol {
    /// Its virtual address.
    pub address: u64,
    /// Where that address is in the file.
    pub file_offset: u64,
    /// The binary loads at the addresses it names (an executable, not PIE).
    pub fixed: bool,
}

impl ElfSymbol {
    /// `symbol` of `binary` (panics naming both when it is not there).
    pub fn find(binary: &Path, symbol: &str) -> ElfSymbol {
        use object::{Object, ObjectKind, ObjectSegment, ObjectSymbol};
        let data = std::fs::read(binary).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let address = file
            .symbols()
            .find(|s| s.name() == Ok(symbol))
            .unwrap_or_else(|| panic!("{}: no symbol {symbol}", binary.display()))
            .address();
        let seg = file
            .segments()
            .find(|s| (s.address()..s.address() + s.size()).contains(&address))
            .unwrap_or_else(|| panic!("{}: {symbol} is in no segment", binary.display()));
        ElfSymbol {
            address,
            file_offset: address - seg.address() + seg.file_range().0,
            fixed: file.kind() == ObjectKind::Executable,
        }
    }
}

/// A `uint64` package variable of a Go program (not stripped, not PIE), summed over `pids`
/// and read from their memory: a count the program keeps itself, read without stopping or
/// trapping it.
pub struct ProgramCounter {
    address: u64,
    mems: Vec<std::fs::File>,
}

impl ProgramCounter {
    /// `symbol` of `binary`, in the processes `pids` run of it.
    pub fn open(binary: &Path, symbol: &str, pids: &[u32]) -> ProgramCounter {
        let sym = ElfSymbol::find(binary, symbol);
        assert!(
            sym.fixed,
            "{}: not a fixed-address executable",
            binary.display()
        );
        let address = sym.address;
        let mems = pids
            .iter()
            .map(|p| std::fs::File::open(format!("/proc/{p}/mem")).unwrap())
            .collect();
        ProgramCounter { address, mems }
    }

    /// The sum now (a process that is gone counts 0).
    pub fn read(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        self.mems
            .iter()
            .map(|m| {
                let mut b = [0u8; 8];
                m.read_exact_at(&mut b, self.address)
                    .map_or(0, |()| u64::from_le_bytes(b))
            })
            .sum()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// x86-64 syscall numbers of the calls gocpu counts.
pub const SYSCALLS: [(&str, u32); 3] = [("futex", 202), ("nanosleep", 35), ("sched_yield", 24)];

/// `perf stat` counting one syscall of one process, read line by line as perf prints its
/// 100 ms intervals.
struct PerfCounter {
    child: Child,
    series: Arc<Mutex<Series>>,
    reader: Option<JoinHandle<()>>,
}

impl PerfCounter {
    fn start(pid: u32, nr: u32) -> PerfCounter {
        let mut child = Command::new("perf")
            .args(["stat", "-x,", "-I", "100", "-p"])
            .arg(pid.to_string())
            .args(["-e", "raw_syscalls:sys_enter", "--filter"])
            .arg(format!("id == {nr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("perf (Debian's linux-perf) cannot run: {e}"));
        let stderr = child.stderr.take().unwrap();
        let series = Arc::new(Mutex::new(Series::default()));
        let s = Arc::clone(&series);
        let reader = std::thread::spawn(move || {
            let mut total = 0u64;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = Instant::now();
                let f: Vec<&str> = line.trim().split(',').collect();
                if f.len() < 4 || !f[3].starts_with("raw_syscalls") {
                    continue;
                }
                let Ok(n) = f[1].parse::<u64>() else {
                    continue;
                };
                let mut s = s.lock().unwrap();
                if s.0.is_empty() {
                    // Counting began about one interval before the first reading.
                    s.0.push((at - Duration::from_millis(100), 0));
                }
                total += n;
                s.0.push((at, total));
            }
        });
        PerfCounter {
            child,
            series,
            reader: Some(reader),
        }
    }
}

impl Drop for PerfCounter {
    fn drop(&mut self) {
        // SIGINT: perf prints its last interval and exits.
        // SAFETY: kill(2) on our own child's pid, which is not reaped before the wait below.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Syscall counts of one process (all its threads, those it starts later included).
pub struct SyscallTruth {
    counters: Vec<(&'static str, PerfCounter)>,
}

impl SyscallTruth {
    /// Starts counting [`SYSCALLS`] of `pid`; returns once perf has printed a first interval.
    pub fn start(pid: u32) -> SyscallTruth {
        let counters: Vec<_> = SYSCALLS
            .iter()
            .map(|(name, nr)| (*name, PerfCounter::start(pid, *nr)))
            .collect();
        let t = SyscallTruth { counters };
        super::wait("perf counting", Duration::from_secs(20), || {
            t.counters
                .iter()
                .all(|(_, c)| c.series.lock().unwrap().0.len() >= 2)
                .then_some(())
        });
        t
    }

    /// The series of syscall `name`.
    pub fn series(&self, name: &str) -> Series {
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.series.lock().unwrap().clone())
            .unwrap_or_default()
    }
}
