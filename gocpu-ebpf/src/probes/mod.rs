//! One module per hook. Each exports exactly one program; names are in `gocpu_common::programs`.
mod cpu_clock;
mod process_exec;
mod process_exit;
mod runtime_cgocall;
mod runtime_futex;
mod runtime_mcall;
mod runtime_usleep;
mod sched_switch;
mod sched_wakeup;
mod sys_futex;
mod sys_nanosleep;
mod sys_sched_yield;
