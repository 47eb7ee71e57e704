//! `find_sites` on hand-assembled byte sequences: boundaries, errors and entry-site choices
//! whose right answer is known from the encoding (annotated next to each byte string).
#![allow(clippy::unwrap_used)]

use gocpu_gobin::sites::{
    EntrySemantics, MAX_FUNCTION_BYTES, SiteInstruction, SitesError, UprobeHandling, find_sites,
};

const E: u64 = 0x40_1000;

fn entry_of(code: &[u8]) -> (u64, SiteInstruction, UprobeHandling, EntrySemantics) {
    let e = find_sites(code, E).unwrap().entry.unwrap();
    (e.vaddr - E, e.instruction, e.handling, e.semantics)
}

fn sem(stack_adjust: u32, repeats_on_stack_growth: bool) -> EntrySemantics {
    EntrySemantics {
        stack_adjust,
        repeats_on_stack_growth,
    }
}

#[test]
fn ret_bytes_inside_immediates_are_not_rets() {
    // mov $0xc3c3c3c3,%eax ; ret
    let s = find_sites(&[0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3], E).unwrap();
    assert_eq!(s.rets, vec![E + 5]);
    assert_eq!(s.instructions, 2);
    // movabs $0xc3..c3,%rax ; ret $8
    let mut code = vec![0x48, 0xb8];
    code.extend([0xc3; 8]);
    code.extend([0xc2, 0x08, 0x00]);
    let s = find_sites(&code, E).unwrap();
    assert_eq!(s.rets, vec![E + 10]);
    // cmp $0xc3,%al ; lea -0x3d(%rbx),%eax (disp8 0xc3) ; ret
    let s = find_sites(&[0x3c, 0xc3, 0x8d, 0x43, 0xc3, 0xc3], E).unwrap();
    assert_eq!(s.rets, vec![E + 5]);
}

#[test]
fn damaged_code_is_an_error() {
    assert_eq!(find_sites(&[], E), Err(SitesError::Empty { entry: E }));
    // mov $imm32,%eax cut after two immediate bytes.
    assert_eq!(
        find_sites(&[0xb8, 0xc3, 0xc3], E),
        Err(SitesError::Truncated { vaddr: E })
    );
    // nop ; nop ; first byte of a two-byte opcode.
    assert_eq!(
        find_sites(&[0x90, 0x90, 0x0f], E),
        Err(SitesError::Truncated { vaddr: E + 2 })
    );
    // 0x06 (push %es) does not exist in 64-bit mode; lock nop is invalid.
    assert_eq!(
        find_sites(&[0x90, 0x06, 0xc3], E),
        Err(SitesError::Undecodable { vaddr: E + 1 })
    );
    assert_eq!(
        find_sites(&[0xf0, 0x90], E),
        Err(SitesError::Undecodable { vaddr: E })
    );
    assert_eq!(
        find_sites(&[0x90; 8], u64::MAX - 3),
        Err(SitesError::AddressOverflow {
            entry: u64::MAX - 3,
            len: 8
        })
    );
    let big = vec![0x90; MAX_FUNCTION_BYTES + 1];
    assert!(matches!(
        find_sites(&big, E),
        Err(SitesError::TooLarge { .. })
    ));
}

#[test]
fn go_1_21_prologue_probes_the_push() {
    let code = [
        0x49, 0x3b, 0x66, 0x10, // 0x00 cmp 0x10(%r14),%rsp
        0x76, 0x0e, // 0x04 jbe 0x14 (morestack tail)
        0x55, // 0x06 push %rbp
        0x48, 0x89, 0xe5, // 0x07 mov %rsp,%rbp
        0x48, 0x83, 0xec, 0x18, // 0x0a sub $0x18,%rsp
        0x48, 0x83, 0xc4, 0x18, // 0x0e add $0x18,%rsp
        0x5d, // 0x12 pop %rbp
        0xc3, // 0x13 ret
        0xe8, 0x00, 0x00, 0x00, 0x00, // 0x14 call (morestack)
        0xeb, 0xe5, // 0x19 jmp entry
    ];
    let s = find_sites(&code, E).unwrap();
    assert_eq!(s.rets, vec![E + 0x13]);
    assert!(
        s.tail_jumps.is_empty(),
        "the jump back to the entry stays inside"
    );
    assert_eq!(
        entry_of(&code),
        (
            6,
            SiteInstruction::Push,
            UprobeHandling::Emulated,
            sem(0, false)
        )
    );
}

#[test]
fn go_1_19_prologue_probes_the_stack_check_branch() {
    let code = [
        0x49, 0x3b, 0x66, 0x10, // 0x00 cmp 0x10(%r14),%rsp
        0x76, 0x18, // 0x04 jbe 0x1e
        0x48, 0x83, 0xec, 0x18, // 0x06 sub $0x18,%rsp
        0x48, 0x89, 0x6c, 0x24, 0x10, // 0x0a mov %rbp,0x10(%rsp)
        0x48, 0x8d, 0x6c, 0x24, 0x10, // 0x0f lea 0x10(%rsp),%rbp
        0x48, 0x8b, 0x6c, 0x24, 0x10, // 0x14 mov 0x10(%rsp),%rbp
        0x48, 0x83, 0xc4, 0x18, // 0x19 add $0x18,%rsp
        0xc3, // 0x1d ret
        0xe8, 0x00, 0x00, 0x00, 0x00, // 0x1e call (morestack)
        0xeb, 0xdb, // 0x23 jmp entry
    ];
    assert_eq!(
        entry_of(&code),
        (
            4,
            SiteInstruction::ConditionalJump,
            UprobeHandling::Emulated,
            sem(0, true)
        )
    );
}

#[test]
fn nop_after_frame_setup_sees_the_adjusted_stack() {
    let code = [
        0x48, 0x83, 0xec, 0x18, // 0x00 sub $0x18,%rsp (no stack check: NOSPLIT)
        0x48, 0x89, 0x6c, 0x24, 0x10, // 0x04 mov %rbp,0x10(%rsp)
        0x48, 0x8d, 0x6c, 0x24, 0x10, // 0x09 lea 0x10(%rsp),%rbp
        0x90, // 0x0e nop (inline mark)
        0x48, 0x01, 0xd8, // 0x0f add %rbx,%rax
        0x48, 0x83, 0xc4, 0x18, // 0x12 add $0x18,%rsp
        0xc3, // 0x16 ret
    ];
    assert_eq!(
        entry_of(&code),
        (
            0x0e,
            SiteInstruction::Nop,
            UprobeHandling::Emulated,
            sem(0x18, false)
        )
    );
}

#[test]
fn writes_to_arguments_stop_the_walk() {
    // add %rbx,%rax ; nop ; ret: the nop sees a changed RAX.
    assert_eq!(
        entry_of(&[0x48, 0x01, 0xd8, 0x90, 0xc3]),
        (
            0,
            SiteInstruction::Other,
            UprobeHandling::SingleStepped,
            sem(0, false)
        )
    );
    // mov %rax,0x8(%rsp) writes the caller's frame (ABI0 arguments live there).
    assert_eq!(
        entry_of(&[0x48, 0x89, 0x44, 0x24, 0x08, 0x90, 0xc3]),
        (
            0,
            SiteInstruction::Other,
            UprobeHandling::SingleStepped,
            sem(0, false)
        )
    );
    // mov %rax,%rdx clobbers the closure context (runtime.mcall in Go 1.19).
    assert_eq!(
        entry_of(&[0x48, 0x89, 0xc2, 0x90, 0xc3]),
        (
            0,
            SiteInstruction::Other,
            UprobeHandling::SingleStepped,
            sem(0, false)
        )
    );
}

#[test]
fn branch_targets_are_not_entry_sites() {
    let code = [
        0x55, // 0x00 push %rbp
        0x48, 0x89, 0xe5, // 0x01 mov %rsp,%rbp
        0x0f, 0x1f, 0x44, 0x00, 0x00, // 0x04 nopl (loop head: would be the cheapest)
        0x48, 0xff, 0xc8, // 0x09 dec %rax
        0x75, 0xf6, // 0x0c jne 0x04
        0x5d, // 0x0e pop %rbp
        0xc3, // 0x0f ret
    ];
    assert_eq!(
        entry_of(&code),
        (
            0,
            SiteInstruction::Push,
            UprobeHandling::Emulated,
            sem(0, false)
        )
    );
    // The same 5-byte nop at the entry is the optimizable site.
    assert_eq!(
        entry_of(&[0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x5d, 0xc3]),
        (
            0,
            SiteInstruction::Nop,
            UprobeHandling::Optimizable,
            sem(0, false)
        )
    );
}

#[test]
fn refused_first_instruction_has_no_entry_site() {
    let s = find_sites(&[0xcc, 0xc3], E).unwrap();
    assert_eq!(s.entry, None);
    assert_eq!(s.rets, vec![E + 1]);
}

#[test]
fn exits_other_than_ret_are_listed() {
    let code = [
        0x48, 0x85, 0xc0, // 0x00 test %rax,%rax
        0x0f, 0x84, 0x00, 0x10, 0x00, 0x00, // 0x03 je +0x1000 (leaves the function)
        0xff, 0xe0, // 0x09 jmp *%rax
        0xe9, 0x00, 0x00, 0x00, 0x10, // 0x0b jmp +0x10000000
        0xc3, // 0x10 ret
    ];
    let s = find_sites(&code, E).unwrap();
    assert_eq!(s.tail_jumps, vec![E + 3, E + 0x0b]);
    assert_eq!(s.indirect_jumps, vec![E + 9]);
    assert_eq!(s.rets, vec![E + 0x10]);
}
