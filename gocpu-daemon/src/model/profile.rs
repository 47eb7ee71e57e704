//! A process's sampled CPU profile over a sliding window: classes per thread, and stacks for
//! hotspots. Fed one poll at a time by ingest; queried by the API and /metrics.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{classify::CpuClass, symbolize::SymFrame};

/// Number of classes.
pub const CLASSES: usize = CpuClass::ALL.len();

/// A symbolized, classified user stack, shared by every sample that has it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Stack {
    /// Frames, innermost first (inlined frames included).
    pub frames: Vec<SymFrame>,
    /// The class of a sample with this stack on a Go thread; `None` when it depends on whether
    /// the thread is a Go M (no Go frame at all: cgo on an M, native otherwise), or when the
    /// stack says nothing ([`Stack::unattributed`]).
    pub class: Option<CpuClass>,
}

impl Stack {
    /// No frame outside kernel-provided code (or no stack at all: capture failed): the sample
    /// gets no class rather than the "outside Go code" one (see `classify`'s module docs).
    pub fn unattributed(&self) -> bool {
        crate::classify::attributed_frames(&self.frames).is_none()
    }
}

#[cfg(test)]
impl Stack {
    /// A stack of Go frames named `names` (innermost first), for tests.
    pub fn go_for_test(names: &[&str], class: Option<CpuClass>) -> Arc<Stack> {
        Arc::new(Stack {
            frames: names
                .iter()
                .map(|n| SymFrame::Go {
                    function: Arc::from(*n),
                    file: Arc::from("x.go"),
                    line: 1,
                    inlined: false,
                })
                .collect(),
            class,
        })
    }
}

/// Samples of one poll.
#[derive(Debug, Default)]
struct Slot {
    at: Option<Instant>,
    /// Per thread: samples per class, and samples whose class depends on the thread's kind.
    threads: HashMap<u32, ([u64; CLASSES], u64)>,
    kernel: u64,
    unattributed: u64,
    stacks: HashMap<(Arc<Stack>, u32), u64>,
}

/// Most distinct (stack, thread) pairs kept per poll; beyond, samples still count per class.
const MAX_STACKS_PER_SLOT: usize = 4096;

/// The sampled profile.
#[derive(Debug)]
pub struct Profile {
    retain: Duration,
    slots: VecDeque<Slot>,
    go_threads: HashSet<u32>,
    /// The runtime's own M list as read so far: per thread id, whether the M called C while
    /// watched ([`CgoEvidence`]); an M is kept for the retention after it was last listed (an
    /// exiting M leaves the list before its thread's last microseconds in libc). `None` while
    /// it has not been read (no offsets for the binary).
    ms: Option<HashMap<u32, CgoEvidence>>,
}

/// What the runtime's M list says of one M's cgo calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CgoEvidence {
    /// `m.ncgocall` when the M was first read.
    first: u64,
    /// When the M was last listed.
    listed: Instant,
    /// The M was inside a cgo call at a read (`m.incgo`), or its count moved since the first.
    called_c: bool,
}

/// Samples per class over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassCounts {
    /// Samples per class, indexed by `CpuClass::index`.
    pub samples: [u64; CLASSES],
    /// Samples that interrupted kernel mode (of those with a class).
    pub kernel: u64,
    /// Samples without a class (no stack captured, or only kernel-provided frames): not in
    /// `samples`, so that shares are over what is known.
    pub unattributed: u64,
    /// Seconds covered.
    pub seconds: f64,
}

impl ClassCounts {
    /// Total samples.
    pub fn total(&self) -> u64 {
        self.samples.iter().sum()
    }

    /// Share of `class` (0 when there are no samples).
    pub fn share(&self, class: CpuClass) -> f64 {
        let t = self.total();
        if t == 0 {
            0.0
        } else {
            self.samples[class.index()] as f64 / t as f64
        }
    }
}

impl Profile {
    /// An empty profile keeping samples for `retain`.
    pub fn new(retain: Duration) -> Self {
        Self {
            retain,
            slots: VecDeque::new(),
            go_threads: HashSet::new(),
            ms: None,
        }
    }

    /// The runtime's M list was read at `at`: each M's thread id, the cgo calls it has made
    /// (`m.ncgocall`) and whether it is in one now (`m.incgo`). Its threads are Go Ms.
    pub fn note_ms(&mut self, at: Instant, ms: impl Iterator<Item = (u32, u64, bool)>) {
        let retain = self.retain;
        let known = self.ms.get_or_insert_with(HashMap::new);
        known.retain(|_, e| at.saturating_duration_since(e.listed) <= retain);
        for (tid, ncgocalls, incgo) in ms {
            let e = known.entry(tid).or_insert(CgoEvidence {
                first: ncgocalls,
                listed: at,
                called_c: false,
            });
            e.called_c |= incgo || ncgocalls != e.first;
            e.listed = at;
            self.go_threads.insert(tid);
        }
    }

    /// The class of samples on thread `tid` whose stack shows no Go code.
    ///
    /// On an M the runtime's list showed neither inside a cgo call (`m.incgo`) nor making one
    /// (`m.ncgocall` moving) no C was called through cgo: a cgo-linked binary's runtime calls
    /// libc for itself — `pthread_create` to start an M (the new thread's first microseconds
    /// run in libc too, and so do its last), `mmap`, `sigaction` — and that is the scheduler
    /// starting Ms, not cgo. Debian's prometheus, which makes no cgo call, read 0.3% cgo in a
    /// 5 s window now and then: a sample in `clone3` under `pthread_create`. (The count alone
    /// is no evidence: the runtime's start-up makes one cgo call on the main thread.) Otherwise
    /// a Go M's time outside Go is cgo, another thread's native.
    fn outside_go(&self, tid: u32) -> CpuClass {
        match self.ms.as_ref().and_then(|ms| ms.get(&tid)) {
            Some(e) if !e.called_c => CpuClass::Scheduler,
            _ if self.go_threads.contains(&tid) => CpuClass::Cgo,
            _ => CpuClass::Native,
        }
    }

    /// Marks `tid` as an M of the Go runtime (it was seen running or blocking in Go code).
    pub fn mark_go_thread(&mut self, tid: u32) {
        self.go_threads.insert(tid);
    }

    /// Whether `tid` is known to be a Go M.
    pub fn is_go_thread(&self, tid: u32) -> bool {
        self.go_threads.contains(&tid)
    }

    /// Forgets threads not in `alive`.
    ///
    /// A thread that exited is remembered while the retained polls hold samples of it: its
    /// samples outside Go code are classed by what it was, not read as native once it is gone.
    pub fn retain_threads(&mut self, alive: &HashSet<u32>) {
        let sampled: HashSet<u32> = self
            .slots
            .iter()
            .flat_map(|s| s.threads.keys().copied())
            .collect();
        self.go_threads
            .retain(|t| alive.contains(t) || sampled.contains(t));
    }

    /// Starts the slot of a poll at `at`, dropping slots older than the retention.
    pub fn begin(&mut self, at: Instant) {
        while let Some(front) = self.slots.front() {
            match front.at {
                Some(t) if at.duration_since(t) > self.retain => {
                    self.slots.pop_front();
                }
                _ => break,
            }
        }
        self.slots.push_back(Slot {
            at: Some(at),
            ..Slot::default()
        });
    }

    /// Adds `count` samples of `stack` on thread `tid` to the current slot.
    pub fn add(&mut self, stack: &Arc<Stack>, tid: u32, kernel: bool, count: u64) {
        if stack.frames.iter().any(|f| f.go_function().is_some()) {
            self.go_threads.insert(tid);
        }
        let Some(slot) = self.slots.back_mut() else {
            return;
        };
        // Counted apart: the poll's on-CPU time is split by the samples that say where it went,
        // and an empty stack on a Go M would otherwise read as cgo.
        if stack.unattributed() {
            slot.unattributed += count;
            return;
        }
        let entry = slot.threads.entry(tid).or_default();
        match stack.class {
            Some(c) => entry.0[c.index()] += count,
            None => entry.1 += count,
        }
        if kernel {
            slot.kernel += count;
        }
        if slot.stacks.len() < MAX_STACKS_PER_SLOT
            || slot.stacks.contains_key(&(Arc::clone(stack), tid))
        {
            *slot.stacks.entry((Arc::clone(stack), tid)).or_default() += count;
        }
    }

    fn slots_since(&self, since: Instant) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .filter(move |s| s.at.is_some_and(|t| t > since))
    }

    fn resolve(&self, tid: u32, counts: &([u64; CLASSES], u64), into: &mut [u64; CLASSES]) {
        for (a, b) in into.iter_mut().zip(counts.0.iter()) {
            *a += b;
        }
        into[self.outside_go(tid).index()] += counts.1;
    }

    /// Samples per class over the slots after `since` (polls ending in (since, now]).
    pub fn classes_since(&self, since: Instant, now: Instant) -> ClassCounts {
        let mut out = ClassCounts {
            seconds: now.saturating_duration_since(since).as_secs_f64(),
            ..ClassCounts::default()
        };
        for slot in self.slots_since(since) {
            out.kernel += slot.kernel;
            out.unattributed += slot.unattributed;
            for (tid, counts) in &slot.threads {
                self.resolve(*tid, counts, &mut out.samples);
            }
        }
        out
    }

    /// Samples per class per thread over the slots after `since`.
    pub fn threads_since(&self, since: Instant) -> HashMap<u32, [u64; CLASSES]> {
        let mut out: HashMap<u32, [u64; CLASSES]> = HashMap::new();
        for slot in self.slots_since(since) {
            for (tid, counts) in &slot.threads {
                self.resolve(*tid, counts, out.entry(*tid).or_default());
            }
        }
        out
    }

    /// Every (stack, thread, class, samples) over the slots after `since`, merged.
    pub fn stacks_since(&self, since: Instant) -> Vec<(Arc<Stack>, u32, CpuClass, u64)> {
        let mut merged: HashMap<(Arc<Stack>, u32), u64> = HashMap::new();
        for slot in self.slots_since(since) {
            for ((st, tid), n) in &slot.stacks {
                *merged.entry((Arc::clone(st), *tid)).or_default() += n;
            }
        }
        merged
            .into_iter()
            .map(|((st, tid), n)| {
                let class = st.class.unwrap_or_else(|| self.outside_go(tid));
                (st, tid, class, n)
            })
            .collect()
    }

    /// Samples per class in the newest slot (the poll just recorded).
    pub fn last_slot_classes(&self) -> [u64; CLASSES] {
        let mut out = [0u64; CLASSES];
        if let Some(slot) = self.slots.back() {
            for (tid, counts) in &slot.threads {
                self.resolve(*tid, counts, &mut out);
            }
        }
        out
    }

    /// The oldest slot's time, if any.
    pub fn oldest(&self) -> Option<Instant> {
        self.slots.front().and_then(|s| s.at)
    }
}

/// Cumulative on-CPU nanoseconds per class: each poll's on-CPU time (exact, from context
/// switches) split by the class shares of that poll's samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassAttribution {
    /// Nanoseconds per class, indexed by `CpuClass::index`.
    pub ns: [u64; CLASSES],
    seen: Option<u64>,
    pending: u64,
}

impl ClassAttribution {
    /// Splits the on-CPU time since the previous call (`oncpu_ns` is cumulative) by `samples`
    /// (this poll's samples per class). Time of a poll without samples waits for the next poll
    /// that has some.
    pub fn attribute(&mut self, oncpu_ns: u64, samples: &[u64; CLASSES]) {
        let delta = self.seen.map_or(0, |prev| oncpu_ns.saturating_sub(prev));
        self.seen = Some(oncpu_ns);
        let pending = self.pending.saturating_add(delta);
        let total: u64 = samples.iter().sum();
        if total == 0 {
            self.pending = pending;
            return;
        }
        let mut given = 0u64;
        for (slot, n) in self.ns.iter_mut().zip(samples) {
            let part = (u128::from(pending) * u128::from(*n) / u128::from(total)) as u64;
            *slot = slot.saturating_add(part);
            given += part;
        }
        // The rounding remainder goes to the largest class.
        if let Some((i, _)) = samples.iter().enumerate().max_by_key(|(_, n)| **n) {
            self.ns[i] = self.ns[i].saturating_add(pending - given);
        }
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str], class: Option<CpuClass>) -> Arc<Stack> {
        Stack::go_for_test(names, class)
    }

    fn native() -> Arc<Stack> {
        Arc::new(Stack {
            frames: vec![SymFrame::Native {
                object: None,
                offset: 0x10,
                symbol: None,
            }],
            class: None,
        })
    }

    #[test]
    fn outside_go_is_cgo_only_on_an_m_that_called_c() {
        let t0 = Instant::now();
        let mut p = Profile::new(Duration::from_secs(10));
        p.begin(t0);
        // 1: an M that never called C; 2: one that did; 3: a Go thread the M list has not
        // shown yet; 4: a thread the runtime does not know.
        p.mark_go_thread(3);
        for tid in 1..=4 {
            p.add(&native(), tid, true, tid as u64);
        }
        let since = t0 - Duration::from_millis(1);
        // Before the M list is read: a Go thread's time outside Go is cgo.
        let before = p.classes_since(since, t0);
        assert_eq!(before.samples[CpuClass::Cgo.index()], 3);
        assert_eq!(before.samples[CpuClass::Native.index()], 1 + 2 + 4);
        // M 1's count never moves (a cgo call before it was watched is no evidence); M 2
        // makes one between reads.
        p.note_ms(t0, [(1, 1, false), (2, 5, false)].into_iter());
        p.note_ms(t0, [(1, 1, false), (2, 6, false)].into_iter());
        let c = p.classes_since(since, t0);
        assert_eq!(c.samples[CpuClass::Scheduler.index()], 1);
        assert_eq!(c.samples[CpuClass::Cgo.index()], 2 + 3);
        assert_eq!(c.samples[CpuClass::Native.index()], 4);
        let by_stack: HashMap<u32, CpuClass> = p
            .stacks_since(since)
            .into_iter()
            .map(|(_, tid, class, _)| (tid, class))
            .collect();
        assert_eq!(by_stack[&1], CpuClass::Scheduler);
        assert_eq!(by_stack[&2], CpuClass::Cgo);
        assert_eq!(by_stack[&4], CpuClass::Native);
        // An M that left the list is remembered for the retention.
        p.retain_threads(&HashSet::new());
        p.note_ms(t0 + Duration::from_secs(10), std::iter::empty());
        assert_eq!(p.classes_since(since, t0), c);
        p.note_ms(t0 + Duration::from_secs(11), std::iter::empty());
        let gone = p.classes_since(since, t0);
        assert_eq!(gone.samples[CpuClass::Scheduler.index()], 0);
        // Evidence only accumulates: an M seen inside a call stays cgo.
        p.note_ms(t0, [(1, 1, false)].into_iter());
        p.note_ms(t0, [(1, 1, true)].into_iter());
        p.note_ms(t0, [(1, 1, false)].into_iter());
        let c = p.classes_since(since, t0);
        assert_eq!(c.samples[CpuClass::Cgo.index()], 1 + 2 + 3);
        assert_eq!(c.samples[CpuClass::Native.index()], 4);
    }

    #[test]
    fn samples_without_a_stack_get_no_class_on_a_go_thread() {
        let t0 = Instant::now();
        let mut p = Profile::new(Duration::from_secs(10));
        p.begin(t0);
        p.add(&stack(&["main.f"], Some(CpuClass::User)), 1, false, 9);
        // Capture failed (empty), and a walk that ended in the vDSO: neither is cgo.
        let empty = Arc::new(Stack {
            frames: Vec::new(),
            class: None,
        });
        let vdso = Arc::new(Stack {
            frames: vec![SymFrame::Native {
                object: Some(Arc::from("[vdso]")),
                offset: 0xb66,
                symbol: None,
            }],
            class: None,
        });
        p.add(&empty, 1, true, 2);
        p.add(&vdso, 1, false, 1);
        let c = p.classes_since(t0 - Duration::from_millis(1), t0);
        assert_eq!(c.samples[CpuClass::Cgo.index()], 0);
        assert_eq!(c.samples[CpuClass::User.index()], 9);
        assert_eq!((c.total(), c.unattributed, c.kernel), (9, 3, 0));
        assert_eq!(p.last_slot_classes()[CpuClass::Cgo.index()], 0);
        assert!(p.stacks_since(t0 - Duration::from_millis(1)).len() == 1);
        // The same empty stack on a thread never seen in Go code is not native either.
        p.add(&empty, 7, false, 4);
        let c = p.classes_since(t0 - Duration::from_millis(1), t0);
        assert_eq!(c.samples[CpuClass::Native.index()], 0);
        assert_eq!(c.unattributed, 7);
    }

    #[test]
    fn windows_count_classes_and_resolve_thread_kind_at_query_time() {
        let t0 = Instant::now();
        let mut p = Profile::new(Duration::from_secs(10));
        p.begin(t0);
        p.add(&stack(&["main.f"], Some(CpuClass::User)), 1, false, 5);
        p.add(&native(), 2, false, 3);
        p.begin(t0 + Duration::from_secs(1));
        p.add(
            &stack(&["runtime.schedule"], Some(CpuClass::Scheduler)),
            1,
            true,
            2,
        );
        let c = p.classes_since(t0 - Duration::from_millis(1), t0 + Duration::from_secs(1));
        assert_eq!(c.samples[CpuClass::User.index()], 5);
        assert_eq!(c.samples[CpuClass::Native.index()], 3);
        assert_eq!(c.kernel, 2);
        assert_eq!(c.total(), 10);
        // Thread 2 later shows Go code: its earlier C samples were cgo, not native.
        p.add(
            &stack(&["runtime.cgocall"], Some(CpuClass::Cgo)),
            2,
            false,
            1,
        );
        let c = p.classes_since(t0 - Duration::from_millis(1), t0 + Duration::from_secs(1));
        assert_eq!(c.samples[CpuClass::Native.index()], 0);
        assert_eq!(c.samples[CpuClass::Cgo.index()], 4);
        // Only the later slot.
        let late = p.classes_since(t0, t0 + Duration::from_secs(1));
        assert_eq!(late.total(), 3);
    }

    #[test]
    fn on_cpu_time_is_split_by_samples_and_carried_when_none() {
        let mut a = ClassAttribution::default();
        let mut s = [0u64; CLASSES];
        a.attribute(1_000, &s); // first read: the baseline only
        s[CpuClass::User.index()] = 3;
        s[CpuClass::Gc.index()] = 1;
        a.attribute(5_000, &s);
        assert_eq!(a.ns[CpuClass::User.index()], 3_000);
        assert_eq!(a.ns[CpuClass::Gc.index()], 1_000);
        a.attribute(6_000, &[0; CLASSES]); // no samples: carried over
        let mut s2 = [0u64; CLASSES];
        s2[CpuClass::Scheduler.index()] = 1;
        a.attribute(7_000, &s2);
        assert_eq!(a.ns[CpuClass::Scheduler.index()], 2_000);
        assert_eq!(a.ns.iter().sum::<u64>(), 6_000);
    }

    #[test]
    fn old_slots_expire_and_stacks_merge() {
        let t0 = Instant::now();
        let mut p = Profile::new(Duration::from_secs(2));
        let s = stack(&["main.f"], Some(CpuClass::User));
        for i in 0..5 {
            p.begin(t0 + Duration::from_secs(i));
            p.add(&s, 7, false, 1);
        }
        assert_eq!(p.slots.len(), 3);
        let stacks = p.stacks_since(t0);
        assert_eq!(stacks.len(), 1);
        assert_eq!(stacks[0].3, 3);
        assert_eq!(p.threads_since(t0)[&7][CpuClass::User.index()], 3);
    }
}
