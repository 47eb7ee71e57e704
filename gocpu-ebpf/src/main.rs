//! gocpu's eBPF programs. One module per hook under `probes/`; every map and load-time global is
//! declared in `maps.rs`; the accounting shared by several hooks is in `accounting.rs`.
#![no_std]
#![no_main]

mod accounting;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so this is dead code.
    unsafe { core::hint::unreachable_unchecked() }
}
