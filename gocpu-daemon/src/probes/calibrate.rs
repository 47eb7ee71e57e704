//! Measures what one uprobe hit costs on this machine, for both kinds of probed instruction:
//! a probe on two tiny functions of the daemon's own binary, timed with and without it.
use std::{hint::black_box, time::Duration};

use crate::{
    discovery::maps::parse_maps,
    probes::{
        ProbeError,
        cpu_now::thread_cpu_ns,
        loader::KernelProbes,
        uprobe_link::{Scope, UprobeLink},
    },
};

/// Measured cost of one uprobe hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HitCost {
    /// At an instruction the kernel emulates (push, relative jump, nop).
    pub emulated: Duration,
    /// At an instruction the kernel single-steps out of line.
    pub single_stepped: Duration,
}

/// Starts with `push %rbp`: a hit is emulated.
#[unsafe(naked)]
extern "C" fn target_emulated(x: u64) -> u64 {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "lea rax, [rdi + 1]",
        "pop rbp",
        "ret"
    )
}

/// Starts with `lea`: a hit is single-stepped.
#[unsafe(naked)]
extern "C" fn target_single_stepped(x: u64) -> u64 {
    core::arch::naked_asm!("lea rax, [rdi + 1]", "ret")
}

/// The thread CPU time `n` calls of `f` take, least of [`RUNS`] runs. CPU time, not wall
/// time: the daemon often calibrates while the programs it watches keep every CPU busy, and a
/// wall-clock reading then counts their time slices as the hits' (3.1 µs read beside 2.1 µs
/// alone). What a hit costs enters the estimates as the part of a period's CPU time that was
/// not the program's, so it must be the hit's alone.
fn time_calls(f: extern "C" fn(u64) -> u64, n: u64) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = thread_cpu_ns();
            let mut acc = 0u64;
            for i in 0..n {
                acc = acc.wrapping_add(f(black_box(i)));
            }
            black_box(acc);
            Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
        })
        .min()
        .unwrap_or_default()
}

/// Timed runs per measurement.
const RUNS: usize = 5;

/// File offset of `addr` in the daemon's own executable mapping.
fn own_file_offset(addr: u64) -> Option<u64> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    parse_maps(&maps)
        .into_iter()
        .find(|m| m.exec && m.contains(addr) && m.path.as_deref() == Some(exe.as_path()))
        .map(|m| addr - m.start + m.offset)
}

/// Two functions of the daemon's own binary (the calibration targets) and their file offsets, to
/// place short-lived probes on.
pub(crate) fn probe_targets() -> Option<[(extern "C" fn(u64) -> u64, u64); 2]> {
    let offset = |f: extern "C" fn(u64) -> u64| own_file_offset(f as usize as u64);
    let (a, b): (extern "C" fn(u64) -> u64, extern "C" fn(u64) -> u64) =
        (target_emulated, target_single_stepped);
    Some([(a, offset(a)?), (b, offset(b)?)])
}

/// The calibration targets: (kind, function, calls to time).
const TARGETS: [(Kind, extern "C" fn(u64) -> u64, u64); 2] = [
    (Kind::Emulated, target_emulated, 20_000),
    (Kind::SingleStepped, target_single_stepped, 10_000),
];

/// Which kind of instruction a target starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Emulated,
    SingleStepped,
}

/// Attaching and detaching the calibration probe (lets the caller lock the kernel side only
/// around these two calls, not while timing).
pub trait CalibrationProbe {
    /// Attaches the calibration program at `file_offset` of the daemon's own executable.
    fn attach(&self, file_offset: u64) -> Result<UprobeLink, ProbeError>;
    /// Detaches it.
    fn detach(&self, link: UprobeLink) -> Result<(), ProbeError>;
}

/// Attaches `program` at `file_offset` of the daemon's own executable (the daemon only), by the
/// same path as the hooks it calibrates.
pub fn attach(
    kernel: &mut KernelProbes,
    program: &'static str,
    file_offset: u64,
) -> Result<UprobeLink, ProbeError> {
    kernel.attach_uprobe(
        program,
        std::path::Path::new("/proc/self/exe"),
        file_offset,
        Scope::Daemon,
    )
}

/// Detaches a calibration probe.
pub fn detach(
    kernel: &mut KernelProbes,
    program: &'static str,
    link: UprobeLink,
) -> Result<(), ProbeError> {
    kernel.detach_uprobe(program, link)
}

/// Measures both costs: (CPU time with the probe - without) / calls, least of [`RUNS`] runs each.
pub fn calibrate(probe: &impl CalibrationProbe) -> Result<HitCost, ProbeError> {
    let mut cost = HitCost {
        emulated: Duration::ZERO,
        single_stepped: Duration::ZERO,
    };
    for (kind, f, calls) in TARGETS {
        let offset = own_file_offset(f as usize as u64).ok_or_else(|| ProbeError::Tracefs {
            reason: "calibration: cannot find the daemon's own code in /proc/self/maps".into(),
        })?;
        let base = time_calls(f, calls);
        let link = probe.attach(offset)?;
        let probed = time_calls(f, calls);
        probe.detach(link)?;
        let per_hit = probed.saturating_sub(base) / u32::try_from(calls).unwrap_or(u32::MAX);
        match kind {
            Kind::Emulated => cost.emulated = per_hit,
            Kind::SingleStepped => cost.single_stepped = per_hit,
        }
    }
    Ok(cost)
}
