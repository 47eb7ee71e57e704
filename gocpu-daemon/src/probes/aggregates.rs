//! Reading the kernel's keyed aggregations: CPU samples and futex callers (drained one
//! generation at a time), blocked time by stack (cumulative), and per-thread state.
//!
//! Drained maps come in pairs selected by the parity of `GENERATION`, which only user space
//! writes. Each poll flips it, waits until no program still runs with the old value (an RCU
//! grace period, [`crate::probes::grace`]), then reads and empties the old generation's maps,
//! stack maps included: nothing writes them any more, so no increment is lost between a read
//! and its delete, and every stack id is freed once its generation is read. Stack ids live one
//! generation; what outlives it (futex callers, cgo callers) gets a stable id in
//! [`OffStacks`].
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use gocpu_common::{
    FutexKey, NO_STACK, OffCpuKey, OffCpuValue, SAMPLE_KERNEL, ThreadChurn, ThreadStats,
};

use crate::probes::{
    loader::AggregateMaps,
    off_stacks::{Evictions, OffStacks},
};

/// Stands in for the grace-period wait where the kernel refused its map-of-maps: programs run
/// for microseconds, so a program still writing the old generation after this is not expected.
const FALLBACK_PAUSE: Duration = Duration::from_millis(2);

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

/// What user space keeps between drains.
#[derive(Debug, Default)]
pub struct DrainState {
    /// The generation the kernel writes now (`GENERATION` starts at 0).
    generation: u32,
    /// Stable stack ids, cumulative futex callers, cgo callers.
    off: OffStacks,
    /// `THREADS` evictions.
    evictions: Evictions,
    /// A flip or grace wait failed once already (logged once, not every poll).
    warned: bool,
}

/// Losses counted in user space, by `gocpu_events_lost_total` reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserLosses {
    /// `THREADS` entries the LRU evicted (their thread's totals start again from zero).
    pub thread_evicted: u64,
    /// Sampled futex calls counted without their stack (too many distinct stacks).
    pub futex_stack_overflow: u64,
}

fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0u64, u64::wrapping_add)
}

fn frames_of(map: &aya::maps::StackTraceMap<aya::maps::MapData>, id: u32) -> Option<Vec<u64>> {
    if id == NO_STACK {
        return None;
    }
    let st = map.get(&id, 0).ok()?;
    Some(st.frames().iter().map(|f| f.ip).collect())
}

/// Deletes every stack of `map` (its generation was read).
fn clear_stacks(map: &mut aya::maps::StackTraceMap<aya::maps::MapData>) {
    let ids: Vec<u32> = map.stack_ids().filter_map(Result::ok).collect();
    for id in ids {
        let _ = map.remove(&id);
    }
}

impl AggregateMaps {
    /// Ends the current generation and reads it: returns its CPU samples, and folds its futex
    /// callers and cgo callers into what [`Self::futex_callers`], [`Self::threads`] and
    /// [`Self::off_stack`] return. Call once per poll, before those.
    pub fn drain_samples(&mut self) -> Vec<RawSample> {
        let old = self.state.generation;
        let next = old.wrapping_add(1);
        if let Err(e) = self.generation.set(0, next, 0) {
            // The kernel keeps writing `old`, which the next poll tries to end again.
            self.warn_once(&format!("cannot flip GENERATION: {e}"));
            return Vec::new();
        }
        self.state.generation = next;
        self.wait_for_programs();
        let slot = (old & 1) as usize;
        let samples = self.drain_cpu(slot);
        self.drain_futex(slot, old);
        self.resolve_cgo(slot, old);
        clear_stacks(&mut self.stacks_off[slot]);
        self.state.off.drained(old);
        samples
    }

    fn warn_once(&mut self, what: &str) {
        if !self.state.warned {
            self.state.warned = true;
            tracing::warn!("{what}");
        }
    }

    /// Returns once no program still writes the generation before the flip.
    fn wait_for_programs(&mut self) {
        let failed = match &self.grace {
            Some(g) => g.wait().err().map(|e| e.to_string()),
            None => Some("no map-of-maps".to_string()),
        };
        if let Some(e) = failed {
            self.warn_once(&format!(
                "grace-period wait unavailable ({e}); pausing instead"
            ));
            std::thread::sleep(FALLBACK_PAUSE);
        }
    }

    fn drain_cpu(&mut self, slot: usize) -> Vec<RawSample> {
        let samples = &mut self.samples[slot];
        let keys: Vec<_> = samples.keys().filter_map(Result::ok).collect();
        let mut stacks: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let count = samples.get(&key, 0).map(|v| sum(v.iter().copied()));
            let _ = samples.remove(&key);
            let Ok(count) = count else { continue };
            if count == 0 {
                continue;
            }
            let ips = if key.stack == NO_STACK {
                Vec::new()
            } else {
                stacks
                    .entry(key.stack)
                    .or_insert_with(|| {
                        frames_of(&self.stacks_cpu[slot], key.stack).unwrap_or_default()
                    })
                    .clone()
            };
            out.push(RawSample {
                tgid: key.tgid,
                tid: key.tid,
                kernel: key.flags & SAMPLE_KERNEL != 0,
                ips,
                count,
            });
        }
        // Every id, not only those in keys: a stack whose sample found the map full is there too.
        clear_stacks(&mut self.stacks_cpu[slot]);
        out
    }

    fn drain_futex(&mut self, slot: usize, generation: u32) {
        let futex = &mut self.futex[slot];
        let keys: Vec<FutexKey> = futex.keys().filter_map(Result::ok).collect();
        for key in keys {
            let calls = futex.get(&key, 0).map(|v| sum(v.iter().copied()));
            let _ = futex.remove(&key);
            let Ok(calls) = calls else { continue };
            let frames = frames_of(&self.stacks_off[slot], key.stack);
            self.state.off.add_futex(key, frames, calls, generation);
        }
    }

    /// Resolves the cgo callers recorded in `generation` while its stack map still holds them.
    fn resolve_cgo(&mut self, slot: usize, generation: u32) {
        let found: Vec<(u64, ThreadStats)> = self
            .threads
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.cgo_stack != NO_STACK && t.cgo_gen == generation)
            .collect();
        for (task, t) in found {
            if let Some(frames) = frames_of(&self.stacks_off[slot], t.cgo_stack) {
                self.state.off.set_cgo(task, t.tgid, generation, frames);
            }
        }
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

    /// Cumulative sampled futex calls (weighted) per (process, stable stack id, op), up to the
    /// last drained generation.
    pub fn futex_callers(&self) -> Vec<(FutexKey, u64)> {
        self.state.off.futex_callers()
    }

    /// User stack of stable id `id` (a futex caller's, or a thread's cgo caller's from
    /// [`Self::threads`]), innermost first.
    pub fn off_stack(&self, id: u32) -> Option<Vec<u64>> {
        self.state.off.frames(id).map(<[u64]>::to_vec)
    }

    /// Every remembered thread of tracked processes, by thread id; `cgo_stack` is a stable id
    /// (or `NO_STACK` until the generation of the thread's last cgo call is drained). Also
    /// brings the eviction count up to date.
    pub fn threads(&mut self) -> Vec<(u32, ThreadStats)> {
        let all: Vec<(u64, ThreadStats)> = self.threads.iter().filter_map(Result::ok).collect();
        let churn = self
            .churn
            .get(&0, 0)
            .map(|v| {
                v.iter().fold(ThreadChurn::default(), |a, c| ThreadChurn {
                    inserts: a.inserts.wrapping_add(c.inserts),
                    deletes: a.deletes.wrapping_add(c.deletes),
                })
            })
            .unwrap_or_default();
        self.state
            .evictions
            .update(churn.inserts, churn.deletes, all.len() as u64);
        let live: HashSet<u64> = all.iter().map(|(task, _)| *task).collect();
        self.state.off.retain_threads(&live);
        all.into_iter()
            .map(|(task, mut t)| {
                t.cgo_stack = if t.cgo_stack == NO_STACK {
                    NO_STACK
                } else {
                    self.state.off.cgo_stack(task, t.tgid, t.cgo_gen)
                };
                (t.tid, t)
            })
            .collect()
    }

    /// Losses counted in user space so far.
    pub fn user_losses(&self) -> UserLosses {
        UserLosses {
            thread_evicted: self.state.evictions.total(),
            futex_stack_overflow: self.state.off.overflow(),
        }
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
        let th: Vec<u64> = self
            .threads
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| t.tgid == tgid)
            .map(|(task, _)| task)
            .collect();
        for task in th {
            // Only a delete that found the entry: the kernel may have deleted it first (the
            // thread's last switch), and counted that one itself.
            if self.threads.remove(&task).is_ok() {
                self.state.evictions.user_deletes += 1;
            }
        }
        // Its samples and futex calls still in the current generation are drained with it
        // and dropped; stable ids and cumulative callers go now.
        self.state.off.forget(tgid, self.state.generation);
    }
}
