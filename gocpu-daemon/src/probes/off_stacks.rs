//! User-space side of the drained stack maps: stable stack ids over kernel ids that live one
//! generation, cumulative futex callers, cgo caller stacks, and `THREADS` evictions.
//!
//! The kernel's stack ids are freed (their map emptied) each time their generation is drained,
//! so the same id soon names another stack. Everything user space keeps beyond one poll (the
//! cumulative futex counts, a thread's last cgo caller, the model's per-id stack cache) uses ids
//! from here instead: one per distinct (process, frames), never reused while the process is
//! tracked, resolved from the kernel's id while that id is still valid.
use std::collections::{HashMap, HashSet};

use gocpu_common::{FutexKey, NO_STACK};

/// Distinct futex caller stacks kept per process; calls from further stacks are counted
/// without their stack (`futex_stack_overflow`), so memory stays bounded for a process
/// whose futex callers never repeat.
pub const MAX_FUTEX_STACKS_PER_PROCESS: usize = 4096;

/// Interned stacks, cumulative futex callers and cgo callers.
#[derive(Debug, Default)]
pub struct OffStacks {
    /// Last id handed out.
    last: u32,
    /// Futex caller stacks: (process, frames) -> id.
    ids: HashMap<(u32, Vec<u64>), u32>,
    /// Every live id's frames (futex callers and cgo callers).
    frames: HashMap<u32, Vec<u64>>,
    /// Futex caller stacks per process.
    per_process: HashMap<u32, usize>,
    /// Cumulative sampled futex calls by (process, stable id, op).
    futex: HashMap<FutexKey, u64>,
    /// Each thread's (by `THREADS` key) last resolved cgo stack: (process, generation, id).
    cgo: HashMap<u64, (u32, u32, u32)>,
    /// Processes forgotten, with the generation the kernel wrote when they were: keys of theirs
    /// drained from that generation or earlier belong to the forgotten incarnation.
    forgotten: HashMap<u32, u32>,
    /// Futex calls whose stack was dropped because the process had too many.
    overflow: u64,
}

impl OffStacks {
    fn next_id(&mut self) -> u32 {
        self.last = self.last.wrapping_add(1);
        if self.last == NO_STACK {
            self.last = 0;
        }
        self.last
    }

    /// Adds `calls` sampled futex calls of `key` (its stack given as `frames`, `None` when the
    /// kernel had none), drained from generation `generation`.
    pub fn add_futex(
        &mut self,
        key: FutexKey,
        frames: Option<Vec<u64>>,
        calls: u64,
        generation: u32,
    ) {
        if self.is_forgotten(key.tgid, generation) {
            return;
        }
        let id = match frames {
            None => NO_STACK,
            Some(f) => match self.ids.get(&(key.tgid, f.clone())) {
                Some(id) => *id,
                None => {
                    let n = self.per_process.entry(key.tgid).or_default();
                    if *n >= MAX_FUTEX_STACKS_PER_PROCESS {
                        self.overflow = self.overflow.wrapping_add(1);
                        NO_STACK
                    } else {
                        *n += 1;
                        let id = self.next_id();
                        self.ids.insert((key.tgid, f.clone()), id);
                        self.frames.insert(id, f);
                        id
                    }
                }
            },
        };
        let stable = FutexKey { stack: id, ..key };
        let total = self.futex.entry(stable).or_default();
        *total = total.wrapping_add(calls);
    }

    /// Cumulative sampled futex calls per (process, stable stack id, op).
    pub fn futex_callers(&self) -> Vec<(FutexKey, u64)> {
        self.futex.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The cgo caller of the thread at `task` of process `tgid`, captured in generation
    /// `generation` as `frames`: gets a fresh id (the thread's previous one is dropped).
    pub fn set_cgo(&mut self, task: u64, tgid: u32, generation: u32, frames: Vec<u64>) {
        if self.is_forgotten(tgid, generation) {
            return;
        }
        let id = self.next_id();
        self.frames.insert(id, frames);
        if let Some((_, _, old)) = self.cgo.insert(task, (tgid, generation, id)) {
            self.frames.remove(&old);
        }
    }

    /// The stable id of the cgo caller the kernel recorded for `task` in `generation`, once
    /// that generation was drained; `NO_STACK` before (or when it could not be captured).
    pub fn cgo_stack(&self, task: u64, tgid: u32, generation: u32) -> u32 {
        match self.cgo.get(&task) {
            Some((t, g, id)) if *t == tgid && *g == generation => *id,
            _ => NO_STACK,
        }
    }

    /// Keeps cgo callers only for the threads in `live` (keys of `THREADS`).
    pub fn retain_threads(&mut self, live: &HashSet<u64>) {
        let frames = &mut self.frames;
        self.cgo.retain(|task, (_, _, id)| {
            let keep = live.contains(task);
            if !keep {
                frames.remove(id);
            }
            keep
        });
    }

    /// The frames of stable id `id`.
    pub fn frames(&self, id: u32) -> Option<&[u64]> {
        self.frames.get(&id).map(Vec::as_slice)
    }

    /// Forgets process `tgid`, forgotten while the kernel wrote generation `generation`.
    pub fn forget(&mut self, tgid: u32, generation: u32) {
        let frames = &mut self.frames;
        self.ids.retain(|(t, _), id| {
            let keep = *t != tgid;
            if !keep {
                frames.remove(id);
            }
            keep
        });
        self.cgo.retain(|_, (t, _, id)| {
            let keep = *t != tgid;
            if !keep {
                frames.remove(id);
            }
            keep
        });
        self.per_process.remove(&tgid);
        self.futex.retain(|k, _| k.tgid != tgid);
        self.forgotten.insert(tgid, generation);
    }

    /// Generation `drained` was drained: forgotten processes whose last generation is done
    /// need no filter any more (a new process with the same pid is another incarnation).
    pub fn drained(&mut self, drained: u32) {
        // Kept while the process's last generation is still ahead of the one drained.
        self.forgotten
            .retain(|_, g| g.wrapping_sub(drained).wrapping_sub(1) < u32::MAX / 2);
    }

    fn is_forgotten(&self, tgid: u32, generation: u32) -> bool {
        self.forgotten
            .get(&tgid)
            .is_some_and(|g| generation.wrapping_sub(*g) > u32::MAX / 2 || *g == generation)
    }

    /// Futex calls counted without their stack because their process had too many stacks.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

/// `THREADS` entries the LRU evicted, from the kernel's inserts and deletes, user space's
/// deletes and the live entries.
#[derive(Debug, Default)]
pub struct Evictions {
    /// Entries user space deleted (a forgotten process's threads).
    pub user_deletes: u64,
    /// Highest count derived so far.
    evicted: u64,
}

impl Evictions {
    /// Updates the count from the kernel's cumulative `inserts` and `deletes` and the `live`
    /// entries, all read just now; returns the total.
    ///
    /// Exact when nothing changes `THREADS` during the reads; otherwise each insert or delete
    /// landing between the reads shifts that one reading by one, so the count is kept from ever
    /// going down (a counter), and catches up at the next reading.
    pub fn update(&mut self, inserts: u64, deletes: u64, live: u64) -> u64 {
        let derived = inserts
            .saturating_sub(deletes)
            .saturating_sub(self.user_deletes)
            .saturating_sub(live);
        self.evicted = self.evicted.max(derived);
        self.evicted
    }

    /// Evictions counted so far.
    pub fn total(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tgid: u32, stack: u32) -> FutexKey {
        FutexKey {
            tgid,
            stack,
            op: 0,
            reserved: 0,
        }
    }

    #[test]
    fn same_frames_accumulate_under_one_id_whatever_the_kernel_id() {
        let mut s = OffStacks::default();
        // Kernel id 7 in one generation, id 9 in the next: same stack, one stable id.
        s.add_futex(key(1, 7), Some(vec![0x10, 0x20]), 3, 0);
        s.add_futex(key(1, 9), Some(vec![0x10, 0x20]), 4, 1);
        // The kernel reused id 7 for another stack: a separate stable id.
        s.add_futex(key(1, 7), Some(vec![0x30]), 5, 1);
        let mut c = s.futex_callers();
        c.sort_by_key(|(_, n)| *n);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1, 5);
        assert_eq!(c[1].1, 7);
        assert_eq!(s.frames(c[1].0.stack), Some(&[0x10u64, 0x20][..]));
        assert_eq!(s.frames(c[0].0.stack), Some(&[0x30u64][..]));
        // A call without a stack stays without one.
        s.add_futex(key(1, NO_STACK), None, 2, 1);
        assert!(
            s.futex_callers()
                .iter()
                .any(|(k, n)| k.stack == NO_STACK && *n == 2)
        );
    }

    #[test]
    fn per_process_cap_counts_the_overflow() {
        let mut s = OffStacks::default();
        for i in 0..MAX_FUTEX_STACKS_PER_PROCESS as u64 + 10 {
            s.add_futex(key(1, 0), Some(vec![i]), 1, 0);
        }
        assert_eq!(s.overflow(), 10);
        // Another process has its own allowance.
        s.add_futex(key(2, 0), Some(vec![1]), 1, 0);
        assert_eq!(s.overflow(), 10);
        let without: u64 = s
            .futex_callers()
            .iter()
            .filter(|(k, _)| k.stack == NO_STACK)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(without, 10);
    }

    #[test]
    fn forgotten_process_ignores_its_late_keys_until_its_generation_is_drained() {
        let mut s = OffStacks::default();
        s.add_futex(key(5, 1), Some(vec![1]), 1, 3);
        s.set_cgo(0xabc, 5, 3, vec![9]);
        s.forget(5, 4);
        assert!(s.futex_callers().is_empty());
        assert_eq!(s.cgo_stack(0xabc, 5, 3), NO_STACK);
        assert!(s.frames.is_empty());
        // Keys written in generations 3 and 4 belong to the forgotten incarnation.
        s.add_futex(key(5, 1), Some(vec![1]), 1, 3);
        s.add_futex(key(5, 1), Some(vec![1]), 1, 4);
        assert!(s.futex_callers().is_empty());
        s.drained(3);
        s.add_futex(key(5, 1), Some(vec![1]), 1, 4);
        assert!(s.futex_callers().is_empty());
        s.drained(4);
        assert!(s.forgotten.is_empty());
        // Generation 5 is a new incarnation's.
        s.add_futex(key(5, 1), Some(vec![1]), 1, 5);
        assert_eq!(s.futex_callers().len(), 1);
    }

    #[test]
    fn cgo_stack_answers_only_for_the_generation_it_was_resolved_in() {
        let mut s = OffStacks::default();
        s.set_cgo(0x1, 7, 10, vec![0xa, 0xb]);
        let id = s.cgo_stack(0x1, 7, 10);
        assert_ne!(id, NO_STACK);
        assert_eq!(s.frames(id), Some(&[0xau64, 0xb][..]));
        // A later cgo call (generation 11) is not resolved yet; another tgid at the same
        // task_struct address is another thread.
        assert_eq!(s.cgo_stack(0x1, 7, 11), NO_STACK);
        assert_eq!(s.cgo_stack(0x1, 8, 10), NO_STACK);
        s.set_cgo(0x1, 7, 11, vec![0xc]);
        assert!(s.frames(id).is_none(), "the replaced stack is freed");
        s.retain_threads(&HashSet::new());
        assert!(s.frames.is_empty());
    }

    #[test]
    fn evictions_are_inserts_minus_deletes_minus_live_and_never_decrease() {
        let mut e = Evictions::default();
        assert_eq!(e.update(10, 2, 8), 0);
        e.user_deletes = 1;
        // 20 inserted, 3 deleted by the kernel, 1 by user space, 12 live: 4 evicted.
        assert_eq!(e.update(20, 3, 12), 4);
        // A reading skewed by an insert seen in `live` but not yet in `inserts`.
        assert_eq!(e.update(20, 3, 13), 4);
        assert_eq!(e.total(), 4);
    }
}
