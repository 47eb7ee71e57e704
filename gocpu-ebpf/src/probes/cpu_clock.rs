//! perf_event on the CPU clock: closes the running slice so that a thread that runs for seconds
//! without being switched out is still charged promptly, not only when it finally leaves the CPU.
use aya_ebpf::{macros::perf_event, programs::PerfEventContext};

use crate::accounting::{close_slice, now_ns};

#[perf_event]
pub fn cpu_clock(_ctx: PerfEventContext) -> u32 {
    let _ = close_slice(now_ns());
    0
}
