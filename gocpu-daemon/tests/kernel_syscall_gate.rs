//! Root integration test: the governed syscall tracepoints count a call only inside a
//! measurement period, so that every call in a process's counters belongs to a period whose
//! length is known. Closing a tracepoint's perf event waits out an RCU grace period (about
//! 70 ms each here), and the programs used to count from their attach to the end of their
//! close: the three, closed one after the other, counted sched_yield 140 ms past a period of a
//! few milliseconds, and the estimates, which take those calls as counted and extrapolate the
//! same time again, read x1.3 to x1.7 (ARCHITECTURE.md, "The syscall group's counting tails").
//! On this test's own thread, yielding as fast as it can.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use gocpu_common::programs;
use gocpu_daemon::{
    config::Config,
    discovery::ProcKey,
    probes::{
        budget::BudgetConfig,
        loader::{HostSetup, KernelProbes},
        syscalls::SyscallProbes,
    },
};

/// The tests' yielders are threads of one process, counted by both tests' programs: one at a
/// time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Index of sched_yield in a period's samples (`syscalls::COUNTERS`).
const YIELD: usize = 4;

/// A thread calling sched_yield(2) as fast as it can, counting its calls.
struct Yielder {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Yielder {
    fn start() -> Yielder {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&made));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
                m.fetch_add(1, Ordering::Relaxed);
            }
        });
        Yielder { stop, made, thread }
    }

    fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// One test at a time (see [`SERIAL`]), as root, with the kernel side loaded and this process
/// in its table.
fn load() -> (MutexGuard<'static, ()>, KernelProbes, u32) {
    let one = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    gocpu_testkit::require_root("the syscall gate test");
    let config = Config::parse_overlay(None, "test").unwrap();
    let host = HostSetup::detect(&config).unwrap();
    let mut kp = KernelProbes::load(&config, &host)
        .unwrap_or_else(|e| panic!("loading the kernel side failed: {e}"));
    let me = std::process::id();
    let cpus = aya::util::nr_cpus().unwrap();
    kp.track(me, cpus).unwrap();
    (one, kp, me)
}

fn yields(kp: &KernelProbes, pid: u32) -> u64 {
    kp.read(pid).unwrap().sched_yield_syscalls
}

#[test]
fn an_attached_tracepoint_counts_only_while_the_gate_is_open() {
    let (_one, mut kp, me) = load();
    let worker = Yielder::start();

    let link = kp
        .tracepoint(programs::SYS_SCHED_YIELD)
        .unwrap()
        .attach("syscalls", "sys_enter_sched_yield")
        .unwrap();
    // Attached, gate closed: the thread yields, nothing counts.
    let before = worker.made();
    std::thread::sleep(Duration::from_millis(50));
    assert!(worker.made() > before + 1000, "the thread does not yield");
    assert_eq!(yields(&kp, me), 0, "counted with the gate closed");

    // Open for 50 ms: every call made meanwhile counts, and no other.
    let start = worker.made();
    kp.set_syscall_gate(true).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    kp.set_syscall_gate(false).unwrap();
    let end = worker.made();
    let counted = yields(&kp, me);
    // Calls made while the gate's map write was in flight (microseconds, on another CPU) may
    // fall on either side.
    let made_open = end - start;
    let slack = 50 + made_open / 1000;
    assert!(
        counted.abs_diff(made_open) <= slack,
        "counted {counted}, made {made_open} while open"
    );

    // Closed again, still attached: the count stands still.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(yields(&kp, me), counted, "counted after the gate closed");
    kp.tracepoint(programs::SYS_SCHED_YIELD)
        .unwrap()
        .detach(link)
        .unwrap();
    worker.stop();
}

#[test]
fn every_call_the_governed_group_counts_belongs_to_a_period() {
    let (_one, mut kp, me) = load();
    let key = ProcKey {
        pid: me,
        start_ticks: 1,
    };
    let worker = Yielder::start();

    // A million yields a second at 400 ns each is far over the default budget: the group is
    // duty-cycled, attached for short periods a quarter of a second apart on average.
    let budget = BudgetConfig::default();
    let mut group = SyscallProbes::new(Instant::now());
    let deadline = Instant::now() + Duration::from_secs(4);
    let (mut periods, mut in_periods, mut seconds) = (0u32, 0u64, 0.0);
    loop {
        let stats = HashMap::from([(key, kp.read(me).unwrap())]);
        let now = Instant::now();
        let (next, samples) = group.govern(
            &mut kp,
            now,
            &budget,
            &stats,
            1.0,
            Duration::from_nanos(budget.syscall_hit_ns),
        );
        for (k, s) in samples {
            assert_eq!(k, key);
            periods += 1;
            in_periods += s[YIELD].calls;
            seconds += s[YIELD].seconds;
        }
        let attached = group.attached().iter().any(|a| *a);
        if now > deadline && !attached {
            break;
        }
        let wake = next.unwrap_or(now + Duration::from_millis(1));
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    let made = worker.made();
    worker.stop();
    // Detached, and the links' closes (on threads of their own) finished long ago or not:
    // nothing counts outside a period either way.
    std::thread::sleep(Duration::from_millis(300));
    let counted = yields(&kp, me);
    eprintln!(
        "{periods} periods, {seconds:.3} s attached, {in_periods} calls in them, {counted} counted, {made} made"
    );
    assert!(periods >= 3, "{periods} periods in 4 s");
    assert!(in_periods > 0, "no call in any period");
    assert_eq!(counted, in_periods, "calls counted outside every period");
}
