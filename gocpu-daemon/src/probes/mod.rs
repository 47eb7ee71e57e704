//! The probe manager: loads gocpu-ebpf, attaches the always-on hooks, attaches uprobes once per
//! binary, and owns the kernel's per-process table (which processes are tracked).
pub mod aggregates;
pub mod budget;
pub mod calibrate;
pub mod cpu_now;
pub mod estimate;
pub mod events;
pub mod grace;
pub mod loader;
pub mod manager;
pub mod off_stacks;
pub mod per_switch;
pub mod syscalls;
pub mod tracefs;
pub mod uprobe_link;
pub mod uprobe_multi;
pub mod uprobes;

/// Drops `link` on a thread of its own. Closing a uprobe_multi link or a tracepoint's perf
/// event takes the program off at once but then waits out an RCU grace period inside the close
/// (20 to 55 ms for a uprobe on a 2-vCPU VM, about 70 ms for a syscall tracepoint), and the
/// governors' thread, which detaches, also ends the other hooks' periods: they would run on
/// unmeasured for as long, and the three syscall tracepoints, closed one after the other,
/// stayed attached 70 and 140 ms past their period.
pub fn drop_elsewhere<T: Send + 'static>(link: T) {
    // A thread that cannot be made drops the closure, and with it the link: closed here.
    let _ = std::thread::Builder::new()
        .name("gocpu-unlink".into())
        .spawn(move || drop(link));
}

/// Errors of the kernel side.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// tracefs is missing or unreadable.
    #[error("tracefs: {reason}")]
    Tracefs {
        /// What failed.
        reason: String,
    },
    /// The eBPF object could not be loaded (verifier, BTF, missing kernel feature).
    #[error("loading eBPF: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded or attached.
    #[error("program {name}: {source}")]
    Program {
        /// Program name.
        name: &'static str,
        /// aya's error.
        source: aya::programs::ProgramError,
    },
    /// The embedded object has no program of this name (a build mismatch).
    #[error("program {0} is not in the eBPF object")]
    MissingProgram(&'static str),
    /// Loading or linking a program for `uprobe_multi` links failed.
    #[error(transparent)]
    Multi(#[from] crate::probes::uprobe_multi::MultiError),
    /// A map is missing from the object or has the wrong type.
    #[error("map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// The kernel's per-process table is full.
    #[error("the kernel process table is full ({limit} processes)")]
    TableFull {
        /// Its capacity.
        limit: u32,
    },
    /// Listing CPUs failed.
    #[error("cannot list CPUs: {0}")]
    Cpus(std::io::Error),
    /// Opening a perf buffer failed.
    #[error("perf buffer: {0}")]
    PerfBuffer(#[from] aya::maps::perf::PerfBufferError),
}
