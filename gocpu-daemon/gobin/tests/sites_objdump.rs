//! Probe sites against Go's own disassembler, for every test toolchain and build variant.
//!
//! For every Go function of the fixture (runtime included: ~2,000-4,000 per binary), the RETs
//! [`find_sites`] reports from the variant's bytes must be exactly the RETs `go tool objdump`
//! lists on the unstripped twin, with the same instruction count; the entry site must be an
//! instruction boundary, preceded only by instructions that leave every argument register and the
//! caller's frame alone, with the stack adjustment those instructions make, and must be
//! kernel-emulated whenever such a prefix contains an emulatable instruction (`push`, `jcc`,
//! `nop`). The oracle reads objdump's Go-syntax text, not our decoder. The stripped build is
//! checked against its default twin's objdump once every function of the twin's symbol table is
//! found to hold the same bytes at the same address in the stripped binary.
//!
//! Functions where objdump itself is wrong are skipped and counted (a few assembly routines):
//! x86asm prints `?` for EVEX (AVX-512) and mis-sizes some VEX instructions (`c5 f8 77`
//! VZEROUPPER as 5 bytes, which hides a RET in countbody).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support_sites;

use std::collections::HashMap;

use gocpu_gobin::sites::{EntrySite, find_sites};
use gocpu_testkit::{Variant, build};
use support_sites::{
    NmFunc, OdFunc, OdInsn, addr2line, fixture, nm_functions, objdump, toolchain, vaddr_bytes,
};

/// Functions that must be present and checked in every binary (a name may differ by version).
const REQUIRED: &[&[&str]] = &[
    &["runtime.mcall"],
    &["runtime.futex.abi0", "runtime.futex"],
    &["runtime.usleep.abi0", "runtime.usleep"],
    &["runtime.findRunnable", "runtime.findrunnable"],
    &["runtime.park_m"],
    &["main.leaf"],
    &["main.smallFrame"],
    &["main.mediumFrame"],
    &["main.hugeFrame"],
    &["main.closureMaker.func1"],
    &["main.(*acc).add"],
    &["main.switchy"],
    &["main.deferred"],
    &["main.variadic"],
];

fn check_toolchain(series: &str) {
    let tc = toolchain(series);
    // Go 1.19's addr2line answers `?` for every address of its own PIE builds; the newest
    // toolchain's reads every release's .gopclntab.
    let pcln = toolchain("1.27");
    let twin_default = build(&tc, &fixture(), Variant::Default);
    for variant in Variant::ALL {
        let bin = build(&tc, &fixture(), variant);
        let twin = if variant == Variant::Stripped {
            twin_default.clone()
        } else {
            bin.clone()
        };
        let funcs = nm_functions(&tc, &twin);
        let od = objdump(&tc, &twin);
        // Go functions are the ones .gopclntab knows; C code (cgo, crt) is not Go's to probe.
        let pcln_names = addr2line(
            &pcln,
            &twin,
            &funcs.iter().map(|f| f.addr).collect::<Vec<_>>(),
        );
        let bytes = std::fs::read(&bin).unwrap();
        if variant == Variant::Stripped {
            let label = format!("go{}", tc.version);
            check_same_layout(&bytes, &std::fs::read(&twin).unwrap(), &funcs, &label);
        }
        let mut checked: HashMap<&str, ()> = HashMap::new();
        let (mut skipped, mut emulated, mut total_rets) = (0, 0, 0);
        for (f, pcln_name) in funcs.iter().zip(&pcln_names) {
            let Some(o) = od.get(&f.name) else { continue };
            if pcln_name == "?" {
                continue;
            }
            let code = vaddr_bytes(&bytes, f.addr, f.size)
                .unwrap_or_else(|| panic!("{} not in a PT_LOAD of {}", f.name, bin.display()));
            let sites = find_sites(code, f.addr)
                .unwrap_or_else(|e| panic!("go{} {}: {}: {e}", tc.version, variant.name(), f.name));
            if o.unreliable {
                skipped += 1;
                continue;
            }
            let ctx = format!(
                "go{} {} {} @{:#x}",
                tc.version,
                variant.name(),
                f.name,
                f.addr
            );
            assert_eq!(sites.rets, o.rets(), "{ctx}: RETs differ from objdump");
            assert!(
                sites.rejected_rets.is_empty(),
                "{ctx}: RET the kernel refuses"
            );
            assert_eq!(
                sites.instructions,
                o.insns.len(),
                "{ctx}: instruction count"
            );
            match sites.entry {
                Some(entry) => {
                    check_entry(&ctx, f, o, &entry);
                    emulated += usize::from(entry.emulated());
                    if variant == Variant::Default
                        && REQUIRED.iter().any(|n| n.contains(&f.name.as_str()))
                    {
                        println!(
                            "go{} {:<28} entry +{:<3} {:?} {:?} adjust {} repeats {}; {} RETs",
                            tc.version,
                            f.name,
                            entry.vaddr - f.addr,
                            entry.instruction,
                            entry.handling,
                            entry.semantics.stack_adjust,
                            entry.semantics.repeats_on_stack_growth,
                            sites.rets.len()
                        );
                    }
                }
                // The kernel refuses EVEX (0x62) and INT (0xcc, 0xcd): AVX-512 routines and
                // runtime.abort (`INT $3`) start with one and have no entry site at all.
                None => assert!(
                    o.insns
                        .first()
                        .is_some_and(|i| ["62", "cc", "cd"].iter().any(|b| i.hex.starts_with(b))),
                    "{ctx}: no entry site, yet the kernel accepts the first instruction"
                ),
            }
            total_rets += sites.rets.len();
            checked.insert(f.name.as_str(), ());
        }
        for names in REQUIRED {
            assert!(
                names.iter().any(|n| checked.contains_key(n)),
                "go{} {}: none of {names:?} was checked",
                tc.version,
                variant.name()
            );
        }
        assert!(
            checked.len() > 1000,
            "only {} functions checked",
            checked.len()
        );
        assert!(
            skipped * 50 < checked.len(),
            "{skipped} functions skipped (objdump cannot decode them)"
        );
        println!(
            "go{} {:>12}: {} functions, {} RETs equal to objdump, {} emulated entry sites, {} skipped (objdump cannot decode)",
            tc.version,
            variant.name(),
            checked.len(),
            total_rets,
            emulated,
            skipped
        );
    }
}

/// `-s -w` does not move code: at every function of the twin's symbol table the stripped binary
/// holds the same bytes, except in relocated fields (`-s -w` changes the build settings string in
/// `.rodata`, so displacements to data after it differ), which are at most 8 bytes wide and never
/// change an instruction's length. (Not `go tool addr2line` on the stripped binary: without
/// `.symtab` it takes the text start from `.text`, which external linking puts C code in front
/// of, and names the wrong functions.)
fn check_same_layout(stripped: &[u8], twin: &[u8], funcs: &[NmFunc], label: &str) {
    let (mut same, mut relocated) = (0, 0);
    for f in funcs {
        let (Some(ours), Some(theirs)) = (
            vaddr_bytes(stripped, f.addr, f.size),
            vaddr_bytes(twin, f.addr, f.size),
        ) else {
            panic!(
                "{label}: {} at {:#x} is not in both binaries",
                f.name, f.addr
            );
        };
        let mut run = 0;
        for (a, b) in ours.iter().zip(theirs) {
            run = if a == b { 0 } else { run + 1 };
            assert!(
                run <= 8,
                "{label}: -s -w changed more than a relocated field of {} at {:#x}",
                f.name,
                f.addr
            );
        }
        if ours == theirs {
            same += 1;
        } else {
            relocated += 1;
        }
    }
    assert!(
        same + relocated > 1000,
        "{label}: only {} functions compared",
        same + relocated
    );
    println!(
        "{label}: -s -w kept {same} functions' bytes, {relocated} differ in relocated fields only"
    );
}

/// Go-syntax registers holding arguments, the closure context or g (ABIInternal).
fn is_argument_register(r: &str) -> bool {
    matches!(
        r,
        "AX" | "BX" | "CX" | "DX" | "DI" | "SI" | "R8" | "R9" | "R10" | "R11" | "R14"
    ) || r
        .strip_prefix('X')
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= 14)
}

/// Parses a Go-syntax displacement like `0xe0(SP)` into (base, displacement).
fn memory_operand(op: &str) -> Option<(&str, i64)> {
    let (disp, rest) = op.split_once('(')?;
    let base = rest.split(')').next()?;
    let disp = if disp.is_empty() || disp == "0" {
        0
    } else if let Some(h) = disp.strip_prefix("-0x") {
        -i64::from_str_radix(h, 16).ok()?
    } else {
        let v = u64::from_str_radix(disp.strip_prefix("0x")?, 16).ok()?;
        v as i64
    };
    Some((base, disp))
}

fn immediate(op: &str) -> Option<i64> {
    let h = op.strip_prefix("$")?;
    if let Some(h) = h.strip_prefix("-0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| -v);
    }
    u64::from_str_radix(h.strip_prefix("0x")?, 16)
        .ok()
        .map(|v| v as i64)
}

/// Whether the conditional jump at `insn` goes to this function's morestack tail (a block that
/// calls runtime.morestack* and jumps back to the function).
fn is_stack_check_jump(f: &NmFunc, o: &OdFunc, insn: &OdInsn) -> bool {
    let Some(target) = insn
        .asm
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.strip_prefix("0x"))
        .and_then(|t| u64::from_str_radix(t, 16).ok())
    else {
        return false;
    };
    let Some(start) = o.insns.iter().position(|i| i.addr == target) else {
        return false;
    };
    let tail: Vec<&OdInsn> = o.insns[start..].iter().take(64).collect();
    let calls_morestack = tail.iter().any(|i| i.asm.contains("runtime.morestack"));
    let back = format!("JMP {}(SB)", f.name);
    let back_abi0 = format!(
        "JMP {}(SB)",
        f.name.strip_suffix(".abi0").unwrap_or(&f.name)
    );
    calls_morestack && tail.iter().any(|i| i.asm == back || i.asm == back_abi0)
}

/// Checks the entry site against objdump's text alone.
fn check_entry(ctx: &str, f: &NmFunc, o: &OdFunc, site: &EntrySite) {
    let k = o
        .insns
        .iter()
        .position(|i| i.addr == site.vaddr)
        .unwrap_or_else(|| {
            panic!(
                "{ctx}: entry site {:#x} is not an instruction boundary",
                site.vaddr
            )
        });
    // Walk objdump's instructions while they leave the argument state alone.
    let check = o.insns.iter().take(8).position(|i| {
        i.asm.starts_with('J') && !i.asm.starts_with("JMP") && is_stack_check_jump(f, o, i)
    });
    let mut adjust: i64 = 0;
    let mut prefix_len = o.insns.len();
    let mut emulatable_in_prefix = false;
    let mut adjust_at = Vec::new();
    for (i, insn) in o.insns.iter().enumerate() {
        adjust_at.push(adjust);
        let (op, operands) = insn.asm.split_once(' ').unwrap_or((insn.asm.as_str(), ""));
        let ops: Vec<&str> = operands.split(", ").filter(|s| !s.is_empty()).collect();
        let first_byte = u8::from_str_radix(insn.hex.get(..2).unwrap_or("00"), 16).unwrap_or(0);
        let emulatable = match op {
            "PUSHQ" => insn.hex.len() == 2 || insn.hex.starts_with("41"),
            "NOPL" | "NOPW" | "NOPQ" => insn.hex.ends_with("90"),
            _ if op.starts_with('J') && op != "JMP" => {
                (0x70..=0x7f).contains(&first_byte) || insn.hex.starts_with("0f8")
            }
            _ => false,
        };
        let keeps_state = match op {
            "CMPQ" | "CMPL" | "TESTQ" | "TESTL" => true,
            _ if op.starts_with("NOP") => true,
            "PUSHQ" => {
                adjust += 8;
                true
            }
            "SUBQ" | "ADDQ" if ops.get(1) == Some(&"SP") => {
                match ops.first().and_then(|o| immediate(o)) {
                    Some(n) => {
                        adjust += if op == "SUBQ" { n } else { -n };
                        true
                    }
                    None => false,
                }
            }
            _ if op.starts_with('J') && op != "JMP" => is_stack_check_jump(f, o, insn),
            "JMP" | "CALL" | "RET" => false,
            _ if op.starts_with("REP") => false,
            _ => match ops.last() {
                // A write into memory strictly below the entry RSP (the new frame) is fine.
                Some(dst) if dst.contains('(') => {
                    let width = match op.chars().last() {
                        Some('B') => 1,
                        Some('W') => 2,
                        Some('L') => 4,
                        Some('Q') => 8,
                        _ if op == "MOVUPS" || op == "MOVAPS" => 16,
                        _ => i64::MAX / 2,
                    };
                    match memory_operand(dst) {
                        Some(("SP", d)) => d >= 0 && d + width <= adjust,
                        _ => false,
                    }
                }
                Some(dst) => !is_argument_register(dst),
                None => false,
            },
        };
        if !keeps_state {
            prefix_len = i;
            break;
        }
        emulatable_in_prefix |= emulatable;
    }
    assert!(
        k <= prefix_len,
        "{ctx}: entry site {:#x} comes after {:?}, which changes argument state",
        site.vaddr,
        o.insns.get(prefix_len).map(|i| &i.asm)
    );
    if emulatable_in_prefix {
        assert!(
            site.emulated(),
            "{ctx}: an emulatable instruction precedes any argument change, but the site {:#x} is single-stepped",
            site.vaddr
        );
    }
    assert_eq!(
        i64::from(site.semantics.stack_adjust),
        adjust_at[k],
        "{ctx}: stack adjustment at {:#x}",
        site.vaddr
    );
    assert_eq!(
        site.semantics.repeats_on_stack_growth,
        check.is_some_and(|c| k <= c),
        "{ctx}: repeats_on_stack_growth at {:#x}",
        site.vaddr
    );
}

#[test]
fn sites_go1_19() {
    check_toolchain("1.19");
}

#[test]
fn sites_go1_21() {
    check_toolchain("1.21");
}

#[test]
fn sites_go1_23() {
    check_toolchain("1.23");
}

#[test]
fn sites_go1_25() {
    check_toolchain("1.25");
}

#[test]
fn sites_go1_27() {
    check_toolchain("1.27");
}
