//! Per-process sampled analysis: the symbolizer, interned classified stacks, the CPU profile,
//! blocking statistics and thread states — everything derived from the kernel's aggregations.
use std::{collections::HashMap, sync::Arc, time::Duration};

use gocpu_common::ThreadStats;

use crate::{
    classify::classify_frames,
    model::{
        blocking::Blocking,
        profile::{ClassAttribution, Profile, Stack},
        runtime_state::RuntimeState,
    },
    symbolize::{ProcessSymbolizer, SymFrame},
};

/// Most distinct stacks interned per process before the intern table starts over.
const MAX_INTERNED: usize = 16_384;

/// Analysis state of one tracked Go process.
#[derive(Debug)]
pub struct ProcessAnalysis {
    symbolizer: ProcessSymbolizer,
    stacks: HashMap<Arc<[u64]>, Arc<Stack>>,
    off_stacks: HashMap<u32, Arc<Stack>>,
    /// Sampled CPU profile.
    pub profile: Profile,
    /// Blocked time and futex callers.
    pub blocking: Blocking,
    /// Latest per-thread kernel state, by tid.
    pub threads: HashMap<u32, ThreadStats>,
    /// Cumulative on-CPU time per class.
    pub classes: ClassAttribution,
    /// The Go runtime's own state, read from its memory.
    pub runtime: RuntimeState,
}

impl ProcessAnalysis {
    /// Analysis with `symbolizer` and `runtime`, keeping samples for `retain` and windows of
    /// `window`.
    pub fn new(
        symbolizer: ProcessSymbolizer,
        runtime: RuntimeState,
        retain: Duration,
        window: Duration,
    ) -> Self {
        Self {
            symbolizer,
            stacks: HashMap::new(),
            off_stacks: HashMap::new(),
            profile: Profile::new(retain),
            blocking: Blocking::new(window),
            threads: HashMap::new(),
            classes: ClassAttribution::default(),
            runtime,
        }
    }

    /// The symbolizer (to refresh mappings).
    pub fn symbolizer_mut(&mut self) -> &mut ProcessSymbolizer {
        &mut self.symbolizer
    }

    fn build(&mut self, ips: &[u64]) -> Stack {
        let mut frames: Vec<SymFrame> = Vec::with_capacity(ips.len() * 2);
        for (i, ip) in ips.iter().enumerate() {
            frames.extend(self.symbolizer.frames(*ip, i == 0).iter().cloned());
        }
        let class = classify_frames(&frames);
        Stack { frames, class }
    }

    /// The interned, symbolized and classified stack for `ips` (innermost first).
    pub fn stack(&mut self, ips: &[u64]) -> Arc<Stack> {
        if let Some(s) = self.stacks.get(ips) {
            return Arc::clone(s);
        }
        let stack = Arc::new(self.build(ips));
        if self.stacks.len() >= MAX_INTERNED {
            self.stacks.clear();
        }
        self.stacks.insert(ips.into(), Arc::clone(&stack));
        stack
    }

    /// The interned stack for `ips`, if it was built before (no symbolization here).
    pub fn cached_stack(&self, ips: &[u64]) -> Option<Arc<Stack>> {
        self.stacks.get(ips).cloned()
    }

    /// Whether the stack of kernel off-CPU stack id `id` is built already.
    pub fn has_off_stack(&self, id: u32) -> bool {
        self.off_stacks.contains_key(&id)
    }

    /// The stack of kernel off-CPU stack id `id`, built from `ips` on first use.
    pub fn off_stack(&mut self, id: u32, ips: impl FnOnce() -> Option<Vec<u64>>) -> Arc<Stack> {
        if let Some(s) = self.off_stacks.get(&id) {
            return Arc::clone(s);
        }
        let ips = ips().unwrap_or_default();
        let stack = Arc::new(self.build(&ips));
        if self.off_stacks.len() < MAX_INTERNED {
            self.off_stacks.insert(id, Arc::clone(&stack));
        }
        stack
    }
}
