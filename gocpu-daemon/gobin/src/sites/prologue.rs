//! Choosing the entry probe site inside a Go amd64 prologue.
//!
//! Go prologues look like (1.21+; 1.19 sets the frame up with `sub`/`mov`/`lea` instead of push):
//!
//! ```text
//!   lea  -N(%rsp),%r12          ; only for frames > 128 bytes (huge frames: mov %rsp,%r12; sub $N,%r12; jb)
//!   cmp  0x10(%r14),%rsp|%r12   ; stack check against g.stackguard0 (R14 = g)
//!   jbe  morestack              ; emulated by the kernel; taken path retries from the entry
//!   push %rbp                   ; emulated by the kernel
//!   mov  %rsp,%rbp
//!   sub  $N,%rsp
//! ```
//!
//! The walk from the entry accepts only these instruction shapes, plus stores that initialise the
//! new frame strictly below the entry RSP (they write flags, RSP, RBP, R12 and the new frame, and
//! nothing else), and stops at anything else or at a branch target. Every instruction the walk
//! reaches is a candidate — a probe fires before its instruction runs, so the instruction that
//! stops the walk still sees untouched arguments. The site is the cheapest candidate the kernel
//! accepts (optimizable nop, then emulated, then single-stepped); among equally cheap ones, one
//! after the stack check wins (it runs once per call), then the earliest.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::{Decoded, UprobeHandling, is_direct_branch, uprobe};

/// Longest prologue walked; Go's longest (huge-frame check plus frame setup) is 9 instructions.
const MAX_PROLOGUE: usize = 16;
/// Instructions searched for the stack check: assembly functions built for PIE first load `g`
/// from TLS (2 instructions), then the huge-frame check takes 5.
const STACK_CHECK_WINDOW: usize = 8;

/// The instruction a probe site sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SiteInstruction {
    /// `push %reg`.
    Push,
    /// A conditional relative jump (the stack-check `jbe`/`jb`).
    ConditionalJump,
    /// `jmp rel8/rel32`.
    Jump,
    /// `call rel32`.
    Call,
    /// A nop.
    Nop,
    /// Anything else (the function's first instruction when nothing cheaper is safe).
    Other,
}

/// What a probe at an [`EntrySite`] sees.
///
/// At the site, every argument register of Go's ABIInternal (RAX, RBX, RCX, RDI, RSI, R8–R11;
/// X0–X14), the closure context RDX and R14 (the current `g` in ABIInternal code) still hold
/// their values from the call; only flags, R12, RBP, RSP and the callee's new frame (below the
/// entry RSP) may have changed. The caller's return address is at `[RSP + stack_adjust]`, and the
/// caller's argument area — ABI0 (assembly) stack arguments, ABIInternal stack-assigned arguments
/// and register spill slots, which are not yet written — starts at `[RSP + stack_adjust + 8]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntrySemantics {
    /// Bytes RSP has moved down since the call (8 after `push %rbp`).
    pub stack_adjust: u32,
    /// Whether the site is at or before the stack-check branch: a call whose stack must grow
    /// runs it twice, because the function restarts at its entry after `runtime.morestack`.
    /// False for functions without a stack check (NOSPLIT) and for sites after the check.
    pub repeats_on_stack_growth: bool,
}

/// Where to probe a function's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntrySite {
    /// Address of the instruction to probe (always an instruction boundary).
    pub vaddr: u64,
    /// How the kernel runs a hit at this instruction.
    pub handling: UprobeHandling,
    /// The instruction at `vaddr`.
    pub instruction: SiteInstruction,
    /// What the probe sees there.
    pub semantics: EntrySemantics,
}

impl EntrySite {
    /// Whether the kernel emulates the instruction (or optimizes it) instead of single-stepping.
    pub fn emulated(&self) -> bool {
        self.handling.is_cheap()
    }
}

/// State of the prologue walk before the instruction at hand.
#[derive(Clone, Copy, Debug, Default)]
struct Walk {
    /// Bytes pushed or subtracted from RSP so far.
    stack_adjust: u32,
    /// The flags were last set by a stack-guard comparison (or the huge-frame `sub $N,%r12`).
    flags_from_stack_check: bool,
}

pub(super) fn entry_site(decoded: &[Decoded<'_>], entry: u64, end: u64) -> Option<EntrySite> {
    let targets = branch_targets(decoded);
    let check = stack_check_branch(decoded, entry, end);
    let mut best: Option<EntrySite> = None;
    let mut walk = Walk::default();
    for (i, d) in decoded.iter().take(MAX_PROLOGUE).enumerate() {
        let insn = &d.insn;
        // Only the entry may be re-entered by a branch (the morestack retry); a later instruction
        // that some branch targets could run many times per call.
        if i > 0 && targets.binary_search(&insn.ip()).is_ok() {
            break;
        }
        let candidate = EntrySite {
            vaddr: insn.ip(),
            handling: uprobe::handling(d.bytes),
            instruction: site_instruction(insn),
            semantics: EntrySemantics {
                stack_adjust: walk.stack_adjust,
                repeats_on_stack_growth: check.is_some_and(|c| i <= c),
            },
        };
        if i == 0 || candidate.handling.is_cheap() {
            best = better(best, candidate);
        }
        match step(insn, walk, entry, end) {
            Some(next) => walk = next,
            None => break,
        }
    }
    best
}

fn better(best: Option<EntrySite>, candidate: EntrySite) -> Option<EntrySite> {
    if candidate.handling == UprobeHandling::Rejected {
        return best;
    }
    let rank = |s: &EntrySite| (s.handling, s.semantics.repeats_on_stack_growth);
    match best {
        Some(b) if rank(&b) <= rank(&candidate) => Some(b),
        _ => Some(candidate),
    }
}

fn site_instruction(insn: &Instruction) -> SiteInstruction {
    match insn.mnemonic() {
        Mnemonic::Push => SiteInstruction::Push,
        Mnemonic::Nop => SiteInstruction::Nop,
        Mnemonic::Jmp if is_direct_branch(insn) => SiteInstruction::Jump,
        Mnemonic::Call if is_direct_branch(insn) => SiteInstruction::Call,
        _ if is_conditional_jump(insn) => SiteInstruction::ConditionalJump,
        _ => SiteInstruction::Other,
    }
}

fn is_conditional_jump(insn: &Instruction) -> bool {
    is_direct_branch(insn) && !matches!(insn.mnemonic(), Mnemonic::Jmp | Mnemonic::Call)
}

/// Sorted direct-branch targets inside the function.
fn branch_targets(decoded: &[Decoded<'_>]) -> Vec<u64> {
    let mut t: Vec<u64> = decoded
        .iter()
        .filter(|d| is_direct_branch(&d.insn))
        .map(|d| d.insn.near_branch_target())
        .collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// The walk state after `insn`, or `None` when `insn` is not a known prologue shape (or may
/// change argument state, or leaves the straight line).
fn step(insn: &Instruction, mut w: Walk, entry: u64, end: u64) -> Option<Walk> {
    use Mnemonic::*;
    let reg0 = reg_op(insn, 0);
    let reg1 = reg_op(insn, 1);
    match insn.mnemonic() {
        Nop => {}
        Cmp if is_stack_guard_compare(insn) => w.flags_from_stack_check = true,
        Lea if reg0 == Some(Register::R12) && insn.memory_base() == Register::RSP => {}
        Mov if reg0 == Some(Register::R12) && reg1 == Some(Register::RSP) => {}
        Sub if reg0 == Some(Register::R12) && is_immediate(insn.op1_kind()) => {
            w.flags_from_stack_check = true;
        }
        _ if is_conditional_jump(insn) && w.flags_from_stack_check => {
            if !is_forward_inside(insn, entry, end) {
                return None;
            }
        }
        Push if reg0 == Some(Register::RBP) => {
            w.stack_adjust = w.stack_adjust.checked_add(8)?;
            w.flags_from_stack_check = false;
        }
        Mov if reg0 == Some(Register::RBP) && reg1 == Some(Register::RSP) => {}
        Sub if reg0 == Some(Register::RSP) && is_immediate(insn.op1_kind()) => {
            let n = u32::try_from(insn.immediate(1)).ok()?;
            w.stack_adjust = w.stack_adjust.checked_add(n)?;
            w.flags_from_stack_check = false;
        }
        Add if reg0 == Some(Register::RSP) && is_immediate(insn.op1_kind()) => {
            // `add $-128,%rsp` encodes a 128-byte frame in an imm8.
            let n = u32::try_from((insn.immediate(1) as i64).checked_neg()?).ok()?;
            w.stack_adjust = w.stack_adjust.checked_add(n)?;
            w.flags_from_stack_check = false;
        }
        // Go 1.19 saves the caller's RBP at the top of the new frame: below the entry RSP.
        Mov if insn.op0_kind() == OpKind::Memory
            && insn.memory_base() == Register::RSP
            && insn.memory_index() == Register::None
            && reg1 == Some(Register::RBP)
            && insn.memory_displacement64() < u64::from(w.stack_adjust) => {}
        Lea if reg0 == Some(Register::RBP)
            && insn.memory_base() == Register::RSP
            && insn.memory_index() == Register::None => {}
        // Zeroing or initialising locals: any store strictly below the entry RSP.
        Mov | Movups | Movaps if stores_inside_frame(insn, w.stack_adjust) => {}
        _ => return None,
    }
    Some(w)
}

/// Index of the stack-check branch: a forward conditional jump within the first few
/// instructions whose flags come from a stack-guard comparison. Go emits it first, so a site at
/// or before it runs again when the function restarts after `runtime.morestack`.
fn stack_check_branch(decoded: &[Decoded<'_>], entry: u64, end: u64) -> Option<usize> {
    let mut flags_from_check = false;
    for (i, d) in decoded.iter().take(STACK_CHECK_WINDOW).enumerate() {
        let insn = &d.insn;
        if is_conditional_jump(insn) {
            if flags_from_check && is_forward_inside(insn, entry, end) {
                // A huge-frame check branches twice (`jb` after the `sub`, then `jbe`).
                let next_is_check = decoded
                    .get(i + 1)
                    .is_some_and(|n| is_stack_guard_compare(&n.insn));
                if !next_is_check {
                    return Some(i);
                }
            }
            continue;
        }
        flags_from_check = is_stack_guard_compare(insn)
            || (insn.mnemonic() == Mnemonic::Sub && reg_op(insn, 0) == Some(Register::R12));
    }
    None
}

/// A jcc to a later address inside the function (where Go puts the morestack tail).
fn is_forward_inside(insn: &Instruction, entry: u64, end: u64) -> bool {
    let target = insn.near_branch_target();
    target > insn.ip() && target >= entry && target < end
}

/// Whether `insn` stores a register or immediate entirely below the entry RSP, i.e. into the
/// function's own new frame, leaving the caller's frame (return address, stack arguments) alone.
fn stores_inside_frame(insn: &Instruction, stack_adjust: u32) -> bool {
    if insn.op0_kind() != OpKind::Memory
        || insn.memory_base() != Register::RSP
        || insn.memory_index() != Register::None
    {
        return false;
    }
    let size = match insn.op1_kind() {
        OpKind::Register => register_size(insn.op1_register()),
        OpKind::Immediate8 => Some(1),
        OpKind::Immediate16 => Some(2),
        OpKind::Immediate32 => Some(4),
        OpKind::Immediate32to64 => Some(8),
        _ => None,
    };
    let disp = insn.memory_displacement64();
    size.and_then(|s| disp.checked_add(s))
        .is_some_and(|top| disp < 1 << 31 && top <= u64::from(stack_adjust))
}

/// Width in bytes of a general-purpose or vector register.
fn register_size(r: Register) -> Option<u64> {
    let n = r as u32;
    let within = |a: Register, b: Register| (a as u32..=b as u32).contains(&n);
    if within(Register::AL, Register::R15L) {
        Some(1)
    } else if within(Register::AX, Register::R15W) {
        Some(2)
    } else if within(Register::EAX, Register::R15D) {
        Some(4)
    } else if within(Register::RAX, Register::R15) {
        Some(8)
    } else if within(Register::XMM0, Register::XMM31) {
        Some(16)
    } else if within(Register::YMM0, Register::YMM31) {
        Some(32)
    } else if within(Register::ZMM0, Register::ZMM31) {
        Some(64)
    } else {
        None
    }
}

fn reg_op(insn: &Instruction, n: u32) -> Option<Register> {
    (n < insn.op_count() && insn.op_kind(n) == OpKind::Register).then(|| insn.op_register(n))
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32
            | OpKind::Immediate32to64
    )
}

/// `cmp %rsp|%r12, 0x10|0x18(%r14)` in either operand order: R14 holds `g`, and
/// `g.stackguard0`/`g.stackguard1` sit at 0x10/0x18 in every Go release.
fn is_stack_guard_compare(insn: &Instruction) -> bool {
    let guard = |k: OpKind| {
        k == OpKind::Memory
            && insn.memory_base() == Register::R14
            && insn.memory_index() == Register::None
            && matches!(insn.memory_displacement64(), 0x10 | 0x18)
    };
    let sp = |r: Option<Register>| matches!(r, Some(Register::RSP | Register::R12));
    insn.op_count() == 2
        && ((sp(reg_op(insn, 0)) && guard(insn.op1_kind()))
            || (guard(insn.op0_kind()) && sp(reg_op(insn, 1))))
}
