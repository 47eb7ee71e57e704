//! Data symbols recovered from code, for stripped binaries (x86-64 only).
//!
//! `runtime.allgadd` has read the same way from Go 1.19 through 1.27:
//! `allgs = append(allgs, gp)` then `atomic.Storeuintptr(&allglen, uintptr(len(allgs)))`.
//! Compiled, the append touches the three words of the `allgs` slice header (`allgs`,
//! `allgs+8`, `allgs+16`) through RIP-relative operands, and the store is
//! `MOV reg, [allgs+8]; LEA reg2, [allglen]; XCHG [reg2], reg`. Nothing else is assumed; a
//! function that does not show exactly one such slice and one such store gives no answer.
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Largest `runtime.allgadd` decoded (it is a few hundred bytes).
const MAX_CODE: usize = 16 << 10;

/// `(allgs, allglen)` from the code of `runtime.allgadd` at `entry`.
pub(crate) fn allgs_from_allgadd(code: &[u8], entry: u64) -> Result<(u64, u64), &'static str> {
    if code.len() > MAX_CODE {
        return Err("runtime.allgadd is unexpectedly large");
    }
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut insns: Vec<Instruction> = Vec::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() {
            break;
        }
        insns.push(insn);
    }
    // Addresses read or written through RIP-relative operands (LEA computes, does not access).
    let accessed: Vec<u64> = insns
        .iter()
        .filter(|i| i.is_ip_rel_memory_operand() && i.mnemonic() != Mnemonic::Lea)
        .map(Instruction::ip_rel_memory_address)
        .collect();
    let mut slices: Vec<u64> = accessed
        .iter()
        .copied()
        .filter(|&a| {
            let has = |x: Option<u64>| x.is_some_and(|x| accessed.contains(&x));
            has(a.checked_add(8)) && has(a.checked_add(16))
        })
        .collect();
    slices.sort_unstable();
    slices.dedup();
    let allgs = match slices.as_slice() {
        [a] => *a,
        [] => return Err("runtime.allgadd touches no slice header"),
        _ => return Err("runtime.allgadd touches several slice headers"),
    };
    let len_word = allgs + 8;
    let mut stores = Vec::new();
    for w in insns.windows(3) {
        let [load, lea, xchg] = w else { continue };
        let loads_len = load.mnemonic() == Mnemonic::Mov
            && load.is_ip_rel_memory_operand()
            && load.ip_rel_memory_address() == len_word
            && load.op0_kind() == OpKind::Register;
        let lea_target = (lea.mnemonic() == Mnemonic::Lea && lea.is_ip_rel_memory_operand())
            .then(|| lea.ip_rel_memory_address());
        let xchg_ok = xchg.mnemonic() == Mnemonic::Xchg
            && xchg.op0_kind() == OpKind::Memory
            && xchg.memory_base() == lea.op0_register()
            && xchg.memory_base() != Register::None
            && xchg.op1_register() == load.op0_register();
        if let (true, Some(t), true) = (loads_len, lea_target, xchg_ok) {
            stores.push(t);
        }
    }
    match stores.as_slice() {
        [len] if *len != allgs => Ok((allgs, *len)),
        [] => Err("runtime.allgadd has no atomic store of len(allgs)"),
        _ => Err("runtime.allgadd has several candidate allglen stores"),
    }
}

#[cfg(test)]
mod tests {
    use super::allgs_from_allgadd;

    #[test]
    fn code_without_the_pattern_gives_no_answer() {
        assert!(allgs_from_allgadd(&[], 0x1000).is_err());
        assert!(allgs_from_allgadd(&[0xcc; 64], 0x1000).is_err());
        assert!(allgs_from_allgadd(&vec![0x90; 20 << 10], 0x1000).is_err());
        // Loads of the three words of a slice header at 0x1100, but no atomic store of its
        // length.
        let code = [
            0x48, 0x8b, 0x0d, 0xf9, 0x00, 0x00, 0x00, // mov rcx,[rip+0xf9] -> 0x1007+0xf9
            0x48, 0x8b, 0x1d, 0xfa, 0x00, 0x00, 0x00, // mov rbx,[rip+0xfa] -> 0x100e+0xfa
            0x48, 0x8b, 0x05, 0xfb, 0x00, 0x00, 0x00, // mov rax,[rip+0xfb] -> 0x1015+0xfb
        ];
        assert_eq!(
            allgs_from_allgadd(&code, 0x1000),
            Err("runtime.allgadd has no atomic store of len(allgs)")
        );
        // ... then mov rcx,[allgs+8]; lea rdx,[0x1200]; xchg [rdx],rcx: allglen at 0x1200.
        let mut full = code.to_vec();
        full.extend([0x48, 0x8b, 0x0d, 0xec, 0x00, 0x00, 0x00]);
        full.extend([0x48, 0x8d, 0x15, 0xdd, 0x01, 0x00, 0x00]);
        full.extend([0x48, 0x87, 0x0a]);
        assert_eq!(allgs_from_allgadd(&full, 0x1000), Ok((0x1100, 0x1200)));
        // The store through another register than the loaded length is not it.
        let last = full.len() - 1;
        full[last] = 0x1a; // xchg [rdx], rbx
        assert!(allgs_from_allgadd(&full, 0x1000).is_err());
    }
}
