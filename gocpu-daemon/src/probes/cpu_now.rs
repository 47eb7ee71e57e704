//! A process's CPU time as of now, not as of its last charge.
//!
//! The kernel side charges a slice to its process when the slice ends: at a context switch, or at
//! the CPU clock's next tick (99 Hz by default) for a thread that keeps its CPU. Read alone, the
//! charged time of a busy process is up to a tick stale per running thread: over a 100 ms period
//! that is ±10% of a core, over a 2 ms one it is noise, and the estimator's calls per CPU second
//! come from such periods. `CPU_SLICE` says, per CPU, since when and for which process the
//! running slice has gone uncharged; charged plus running is the CPU time at the instant of the
//! read.
use std::{collections::HashMap, sync::Mutex};

use gocpu_common::CpuSlice;

/// A slice older than this is stale bookkeeping (a CPU whose clock event stopped), not running
/// time: the clock closes every slice within a period.
const MAX_RUNNING: u64 = 1_000_000_000;

/// Uncharged running time per process at `now_ns` (`bpf_ktime_get_ns` time), from every CPU's
/// slice.
pub fn running(slices: &[CpuSlice], now_ns: u64) -> HashMap<u32, u64> {
    let mut out: HashMap<u32, u64> = HashMap::new();
    for s in slices {
        if s.tgid == 0 || s.start_ns == 0 || s.start_ns >= now_ns {
            continue;
        }
        *out.entry(s.tgid).or_default() += (now_ns - s.start_ns).min(MAX_RUNNING);
    }
    out
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The calling thread's CPU time in nanoseconds, user and system: what a hit's trap costs it,
/// whoever else wants the CPU meanwhile.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; both clocks used here exist on
    // every kernel the daemon runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Keeps each process's CPU reading from going backwards. The charged counters and the slices are
/// two reads: a slice the clock charges between them is in neither, and a reading after a larger
/// one would make a delta wrap around.
#[derive(Debug, Default)]
pub struct CpuFloor(Mutex<HashMap<u32, u64>>);

impl CpuFloor {
    /// `ns`, or the largest reading of `pid` given so far if that is larger.
    pub fn settle(&self, pid: u32, ns: u64) -> u64 {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let floor = m.entry(pid).or_default();
        *floor = (*floor).max(ns);
        *floor
    }

    /// Forgets `pid` (its counters restart from zero when it is tracked again).
    pub fn forget(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(start_ns: u64, tgid: u32) -> CpuSlice {
        CpuSlice {
            start_ns,
            tgid,
            reserved: 0,
        }
    }

    #[test]
    fn running_slices_add_up_per_process_and_others_are_ignored() {
        let slices = [
            slice(1_000, 7),
            slice(4_000, 7),
            slice(2_000, 9),
            slice(3_000, 0),  // not a tracked thread
            slice(0, 7),      // no switch seen on that CPU yet
            slice(20_000, 7), // started after the clock read: nothing yet
            slice(5, 11),     // stale: capped
        ];
        let r = running(&slices, 10_000);
        assert_eq!(r.get(&7), Some(&(9_000 + 6_000)));
        assert_eq!(r.get(&9), Some(&8_000));
        assert_eq!(r.get(&0), None);
        let r = running(&slices, MAX_RUNNING * 3);
        assert_eq!(r.get(&11), Some(&MAX_RUNNING));
    }

    #[test]
    fn readings_never_go_back_and_restart_when_forgotten() {
        let f = CpuFloor::default();
        assert_eq!(f.settle(1, 100), 100);
        assert_eq!(f.settle(1, 90), 100);
        assert_eq!(f.settle(1, 130), 130);
        assert_eq!(f.settle(2, 5), 5);
        f.forget(1);
        assert_eq!(f.settle(1, 3), 3);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
