//! Reading the kernel's keyed aggregations: CPU samples (drained each poll), blocked time and
//! futex callers by stack (cumulative), and per-thread state.
use gocpu_common::{FutexKey, NO_STACK, OffCpuKey, OffCpuValue, SAMPLE_KERNEL, ThreadStats};

use crate::probes::loader::AggregateMaps;

/// CPU samples of one (process, thread, stack, mode) since the last drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSample {
    /// Process.
    pub tgid: u32,
    /// Thread.
    pub tid: u32,
    /// The sample interrupted kernel mode.
    pub kernel: bool,
    /// User stack, innermost first; empty when it could not be captured.
    pub ips: Vec<u64>,
    /// Number of samples.
    pub count: u64,
}

fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0u64, u64::wrapping_add)
}

impl AggregateMaps {
    /// Takes every CPU sample recorded since the previous call (and frees their stacks).
    pub fn drain_samples(&mut self) -> Vec<RawSample> {
        let keys: Vec<_> = self.samples.keys().filter_map(Result::ok).collect();
        let mut out = Vec::with_capacity(keys.len());
        let mut stacks = Vec::new();
        for key in keys {
            let count = match self.samples.get(&key, 0) {
                Ok(v) => sum(v.iter().copied()),
                Err(_) => continue,
            };
            // Read-then-delete: an increment landing in between is lost; the window is a few
            // microseconds per key and once a second.
            let _ = self.samples.remove(&key);
            if count == 0 {
                continue;
            }
            let ips = if key.stack == NO_STACK {
                Vec::new()
            } else {
                stacks.push(key.stack);
                self.stacks_cpu
                    .get(&key.stack, 0)
                    .map(|st| st.frames().iter().map(|f| f.ip).collect())
                    .unwrap_or_default()
            };
            out.push(RawSample {
                tgid: key.tgid,
                tid: key.tid,
                kernel: key.flags & SAMPLE_KERNEL != 0,
                ips,
                count,
            });
        }
        stacks.sort_unstable();
        stacks.dedup();
        for id in stacks {
            let _ = self.stacks_cpu.remove(&id);
        }
        out
    }

    /// Cumulative blocked time per (process, blocking stack).
    pub fn offcpu(&self) -> Vec<(OffCpuKey, OffCpuValue)> {
        self.offcpu
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                let mut total = OffCpuValue::default();
                for x in v.iter() {
                    total.blocked_ns = total.blocked_ns.wrapping_add(x.blocked_ns);
                    total.count = total.count.wrapping_add(x.count);
                }
                (k, total)
            })
            .collect()
    }

    /// Cumulative sampled futex calls (weighted) per (process, stack, op).
    pub fn futex_callers(&self) -> Vec<(FutexKey, u64)> {
        self.futex
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k, sum(v.iter().copied())))
            .collect()
    }

    /// User stack `id` of a blocking point or futex caller, innermost first.
    pub fn off_stack(&self, id: u32) -> Option<Vec<u64>> {
        if id == NO_STACK {
            return None;
        }
        let st = self.stacks_off.get(&id, 0).ok()?;
        Some(st.frames().iter().map(|f| f.ip).collect())
    }

    /// Every remembered thread of tracked processes, by thread id.
    pub fn threads(&self) -> Vec<(u32, ThreadStats)> {
        self.threads
            .iter()
            .filter_map(Result::ok)
            .map(|(_, t)| (t.tid, t))
            .collect()
    }

    /// Forgets everything about process `tgid` (it exited or is no longer tracked).
    pub fn forget(&mut self, tgid: u32) {
        let off: Vec<_> = self
            .offcpu
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == tgid)
            .collect();
        for k in off {
            let _ = self.offcpu.remove(&k);
        }
        let fx: Vec<_> = self
            .futex
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.tgid == tgid)
            .collect();
        for k in fx {
            let _ = self.futex.remove(&k);
        }
        let th: Vec<u64> = self
            .threads
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.tgid == tgid)
            .map(|(task, _)| task)
            .collect();
        for task in th {
            let _ = self.threads.remove(&task);
        }
    }
}
