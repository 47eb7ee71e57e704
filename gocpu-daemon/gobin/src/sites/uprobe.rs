//! How the x86-64 Linux kernel handles a uprobe at an instruction, decided from its bytes.
//!
//! Mirrors `arch_uprobe_analyze_insn` in `arch/x86/kernel/uprobes.c` (Linux 6.x) for 64-bit
//! tasks; read there, not copied. The kernel first refuses instructions it cannot run out of line
//! (`uprobe_init_insn`: bad prefixes, opcodes cleared in `good_insns_64`), then gives two small
//! families a software emulation that needs no single-step (`branch_setup_xol_ops`: `jmp rel8/32`,
//! `call rel32`, `jcc rel8/32`, `0x90` nop with any prefixes; `push_setup_xol_ops`: `push r64`
//! without a REX prefix or with exactly `0x41`), and single-steps everything else in an XOL slot.
//! Measured here (docs/measurements.md): single-step ~5 µs per hit, emulation ~1.1 µs, and a 5-byte
//! nop ~0.7 µs because the 6.18 kernel rewrites it into a call to a uprobe trampoline.

/// What the kernel does when a uprobe at this instruction is hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UprobeHandling {
    /// A 5-byte nop (`0f 1f 44 00 00`) that the kernel turns into a trampoline call: cheapest.
    Optimizable,
    /// Emulated in the kernel (push, relative jmp/call/jcc, `0x90` nop): no single-step.
    Emulated,
    /// Copied to an out-of-line slot and single-stepped: the expensive path.
    SingleStepped,
    /// The kernel refuses to place a uprobe here (registration fails).
    Rejected,
}

impl UprobeHandling {
    /// Whether a hit costs no single-step.
    pub fn is_cheap(self) -> bool {
        matches!(self, UprobeHandling::Optimizable | UprobeHandling::Emulated)
    }
}

/// Legacy prefixes the kernel's decoder accepts before the opcode.
const LEGACY_PREFIXES: [u8; 11] = [
    0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
];
/// Prefixes `is_prefix_bad` refuses: es/cs/ds/ss overrides and lock.
const BAD_PREFIXES: [u8; 5] = [0x26, 0x2e, 0x36, 0x3e, 0xf0];

/// One-byte opcodes cleared in the kernel's `good_insns_64` table.
fn opcode_refused(op: u8) -> bool {
    matches!(
        op,
        0x06 | 0x07
            | 0x0e
            | 0x16
            | 0x17
            | 0x1e
            | 0x1f
            | 0x27
            | 0x2f
            | 0x37
            | 0x3f
            | 0x60..=0x62
            | 0x6c..=0x6f
            | 0x82
            | 0x9a
            | 0xcc..=0xcf
            | 0xd4..=0xd6
            | 0xe4..=0xe7
            | 0xea
            | 0xec..=0xef
            | 0xf1
            | 0xf4
            | 0xfa
            | 0xfb
    )
}

/// Classifies the encoded instruction `insn` (exactly one instruction's bytes).
pub fn handling(insn: &[u8]) -> UprobeHandling {
    let mut i = 0;
    let mut prefixes: [u8; 15] = [0; 15];
    let mut nprefixes = 0;
    while let Some(&b) = insn.get(i) {
        if !LEGACY_PREFIXES.contains(&b) {
            break;
        }
        if let Some(slot) = prefixes.get_mut(nprefixes) {
            *slot = b;
            nprefixes += 1;
        }
        i += 1;
    }
    let prefixes = prefixes.get(..nprefixes).unwrap_or(&[]);
    if prefixes.iter().any(|p| BAD_PREFIXES.contains(p)) {
        return UprobeHandling::Rejected;
    }
    let mut rex = None;
    if let Some(&b) = insn.get(i)
        && (0x40..=0x4f).contains(&b)
    {
        rex = Some(b);
        i += 1;
    }
    let Some(&op1) = insn.get(i) else {
        return UprobeHandling::Rejected;
    };
    // The kernel's decoder reports the byte after a VEX prefix as the opcode; EVEX (0x62) is
    // refused outright by the table.
    let (op1, op2) = match op1 {
        0xc4 => (insn.get(i + 3).copied().unwrap_or(0xcc), None),
        0xc5 => (insn.get(i + 2).copied().unwrap_or(0xcc), None),
        0x0f => (0x0f, insn.get(i + 1).copied()),
        b => (b, None),
    };
    if opcode_refused(op1) {
        return UprobeHandling::Rejected;
    }
    // mov %ss: the kernel will not single-step exception-masking instructions.
    if op1 == 0x8e && insn.get(i + 1).is_some_and(|modrm| (modrm >> 3) & 7 == 2) {
        return UprobeHandling::Rejected;
    }
    let has_66 = prefixes.contains(&0x66);
    let is_branch = matches!(
        (op1, op2),
        (0xeb | 0xe9 | 0xe8 | 0x70..=0x7f, _) | (0x0f, Some(0x80..=0x8f))
    );
    if is_branch {
        // 16-bit branch overrides are refused (-ENOTSUPP), not single-stepped.
        return if has_66 {
            UprobeHandling::Rejected
        } else {
            UprobeHandling::Emulated
        };
    }
    if op1 == 0x90 && rex.is_none() {
        return UprobeHandling::Emulated;
    }
    if (0x50..=0x57).contains(&op1) && nprefixes == 0 && matches!(rex, None | Some(0x41)) {
        return UprobeHandling::Emulated;
    }
    if insn == [0x0f, 0x1f, 0x44, 0x00, 0x00] {
        return UprobeHandling::Optimizable;
    }
    UprobeHandling::SingleStepped
}

#[cfg(test)]
mod tests {
    use super::{UprobeHandling::*, handling};

    #[test]
    fn kernel_rules() {
        assert_eq!(handling(&[0x55]), Emulated, "push %rbp");
        assert_eq!(handling(&[0x41, 0x54]), Emulated, "push %r12");
        assert_eq!(
            handling(&[0x48, 0x55]),
            SingleStepped,
            "REX.W push is not emulated"
        );
        assert_eq!(handling(&[0x76, 0x10]), Emulated, "jbe rel8");
        assert_eq!(handling(&[0x0f, 0x86, 0, 0, 0, 0]), Emulated, "jbe rel32");
        assert_eq!(handling(&[0x66, 0xe9, 0, 0]), Rejected, "jmpw");
        assert_eq!(handling(&[0xe8, 0, 0, 0, 0]), Emulated, "call rel32");
        assert_eq!(handling(&[0x90]), Emulated);
        assert_eq!(handling(&[0x66, 0x90]), Emulated, "prefix* + nop");
        assert_eq!(handling(&[0x0f, 0x1f, 0x44, 0, 0]), Optimizable);
        assert_eq!(handling(&[0x0f, 0x1f, 0x40, 0]), SingleStepped);
        assert_eq!(
            handling(&[0x49, 0x3b, 0x66, 0x10]),
            SingleStepped,
            "stack check"
        );
        assert_eq!(handling(&[0xc3]), SingleStepped, "ret");
        assert_eq!(handling(&[0xcc]), Rejected, "int3");
        assert_eq!(
            handling(&[0xf0, 0x48, 0x0f, 0xb1, 0x0a]),
            Rejected,
            "lock cmpxchg"
        );
        assert_eq!(
            handling(&[0x62, 0xf1, 0x7c, 0x48, 0x10, 0x00]),
            Rejected,
            "EVEX"
        );
        assert_eq!(handling(&[]), Rejected);
    }
}
