//! Folding one poll of the kernel's keyed aggregations into each process's analysis: CPU
//! samples into the profile (symbolized, classified), blocked time by reason, futex calls by
//! caller, thread states.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use gocpu_common::{
    FutexKey, FutexOp, NO_STACK, OFF_FRAMES, OffCpuKey, OffCpuValue, THREAD_GO, ThreadStats,
};

use crate::{
    discovery::procfs::ProcFs,
    model::{
        Model,
        blocking::{FutexCaller, OffReason, futex_caller},
        profile::Stack,
    },
    probes::aggregates::RawSample,
};

/// One poll's worth of kernel aggregations.
#[derive(Debug, Default)]
pub struct PollData {
    /// CPU samples since the previous poll.
    pub samples: Vec<RawSample>,
    /// Cumulative blocked time per (process, stack).
    pub offcpu: Vec<(OffCpuKey, OffCpuValue)>,
    /// Cumulative futex calls per (process, stack, op).
    pub futex: Vec<(FutexKey, u64)>,
    /// Every remembered thread.
    pub threads: Vec<(u32, ThreadStats)>,
}

/// The valid part of a fixed-size frame array.
fn frames_of(ips: &[u64; OFF_FRAMES], depth: u32) -> &[u64] {
    &ips[..(depth as usize).min(OFF_FRAMES)]
}

/// The off-CPU stack ids [`apply`] may read from the kernel for `data`: the futex callers'
/// stacks a process has not built yet, and the stacks of every thread's last cgo call.
pub fn off_stacks_wanted(model: &Model, data: &PollData) -> HashSet<u32> {
    let futex = data.futex.iter().filter(|(k, _)| {
        model
            .get(k.tgid)
            .and_then(|p| p.analysis.as_ref())
            .is_some_and(|a| !a.has_off_stack(k.stack))
    });
    futex
        .map(|(k, _)| k.stack)
        .chain(data.threads.iter().map(|(_, t)| t.cgo_stack))
        .filter(|id| *id != NO_STACK)
        .collect()
}

/// Applies `data`, read at `now`, to the model. `off_stack` reads an off-CPU stack's addresses
/// from the kernel (called once per new stack id and process).
pub fn apply(
    model: &mut Model,
    procfs: &ProcFs,
    now: Instant,
    data: PollData,
    mut off_stack: impl FnMut(u32) -> Option<Vec<u64>>,
) {
    let mut samples: HashMap<u32, Vec<RawSample>> = HashMap::new();
    for s in data.samples {
        samples.entry(s.tgid).or_default().push(s);
    }
    let mut offcpu: HashMap<u32, Vec<(OffCpuKey, OffCpuValue)>> = HashMap::new();
    for (k, v) in data.offcpu {
        offcpu.entry(k.tgid).or_default().push((k, v));
    }
    let mut futex: HashMap<u32, Vec<(u32, u32, u64)>> = HashMap::new();
    for (k, n) in data.futex {
        futex.entry(k.tgid).or_default().push((k.stack, k.op, n));
    }
    let mut threads: HashMap<u32, HashMap<u32, ThreadStats>> = HashMap::new();
    for (tid, t) in data.threads {
        threads.entry(t.tgid).or_default().insert(tid, t);
    }

    for p in model.iter_mut() {
        let pid = p.key.pid;
        let Some(a) = p.analysis.as_mut() else {
            continue;
        };
        let cgo_callers: HashMap<u32, u32> = threads
            .get(&pid)
            .map(|ts| {
                ts.iter()
                    .filter(|(_, t)| t.cgo_stack != NO_STACK)
                    .map(|(tid, t)| (*tid, t.cgo_stack))
                    .collect()
            })
            .unwrap_or_default();
        let own = samples.remove(&pid).unwrap_or_default();
        // Libraries loaded since the mappings were read show up as unmapped addresses.
        let unmapped = own
            .iter()
            .flat_map(|s| s.ips.iter())
            .any(|ip| !a.symbolizer_mut().is_mapped(*ip));
        if let Some(maps) = unmapped.then(|| procfs.maps(pid).ok()).flatten() {
            a.symbolizer_mut().update_maps(maps);
        }
        a.profile.begin(now);
        for s in own {
            let stack = if s.ips.is_empty() {
                // No stack captured: the profile counts it unattributed, never as C on an M.
                Arc::new(Stack {
                    frames: Vec::new(),
                    class: None,
                })
            } else {
                let stack = a.stack(&s.ips);
                match cgo_callers.get(&s.tid) {
                    // Outside Go with no way back (C without frame pointers): append the Go
                    // stack that made the thread's last cgo call. Not to a walk that ended in
                    // the vDSO: Go code reads the clock there too, long after a cgo call.
                    Some(caller)
                        if !stack.unattributed()
                            && !stack.frames.iter().any(|f| f.go_function().is_some()) =>
                    {
                        let mut ips = s.ips.clone();
                        ips.extend(off_stack(*caller).unwrap_or_default());
                        a.stack(&ips)
                    }
                    _ => stack,
                }
            };
            a.profile.add(&stack, s.tid, s.kernel, s.count);
        }
        if let Some((_, stats)) = p.window.latest() {
            let slot = a.profile.last_slot_classes();
            a.classes.attribute(stats.oncpu_ns, &slot);
        }

        let mut by_reason: HashMap<OffReason, u64> = HashMap::new();
        for (k, v) in offcpu.remove(&pid).unwrap_or_default() {
            let st = a.stack(frames_of(&k.ips, k.depth));
            *by_reason.entry(OffReason::of(&st.frames)).or_default() += v.blocked_ns;
        }
        let mut callers: HashMap<FutexCaller, u64> = HashMap::new();
        for (stack, op, n) in futex.remove(&pid).unwrap_or_default() {
            let st = a.off_stack(stack, || off_stack(stack));
            let op = FutexOp::from_u32(op).unwrap_or(FutexOp::Other);
            *callers
                .entry((futex_caller(&st.frames), op.into()))
                .or_default() += n;
        }
        a.blocking.record(now, by_reason, callers);

        let mine = threads.remove(&pid).unwrap_or_default();
        for (tid, t) in &mine {
            // A thread that ran runtime code (a runtime uprobe fired on it) or blocked in Go code
            // is an M of the runtime.
            let st = a.stack(frames_of(&t.off_ips, t.off_depth));
            if t.flags & THREAD_GO != 0 || st.frames.iter().any(|f| f.go_function().is_some()) {
                a.profile.mark_go_thread(*tid);
            }
        }
        let alive: HashSet<u32> = mine.keys().copied().collect();
        a.profile.retain_threads(&alive);
        a.threads = mine;
    }
}
