//! Addresses of the runtime variables an outside reader starts from (`runtime.allgs`,
//! `allglen`, `allm`, `sched`, `gomaxprocs`, `allp`): from `.symtab` when the binary has one,
//! else recovered from the x86-64 code of small runtime functions that use them.
//!
//! Each code anchor is a pattern the function shows in every release from Go 1.19 to 1.27
//! (checked against `.symtab` of each toolchain's builds by the test `runtime_symbols`); a
//! function that does not show exactly the pattern gives no answer:
//!
//! | variable | function | pattern |
//! |---|---|---|
//! | `gomaxprocs` | `runtime.(*scavengerState).init.func4` (`return gomaxprocs`) | the whole body is `MOV r32, [rip+X]; RET` |
//! | `allp` | `runtime.preemptall` (`for _, pp := range allp`) | its only RIP-relative accesses are qword loads of `X` and `X+8` |
//! | `allm` | `runtime.mcommoninit` (`mp.alllink = allm; atomicstorep(&allm, mp)`) | a qword load of `X`, and `LEA r, [rip+X]; XCHG [r], r2` |
//! | `sched` | `runtime.mput` (`sched.nmidle++`) and `runtime.mReserveID` (`sched.mnext++`) | the one `INC dword [rip+X]` of mput minus `nmidle`'s offset equals the one address mReserveID accesses minus `mnext`'s offset |
//!
//! `allgs` and `allglen` come from [`GoBinary::data_symbol`], whose stripped path decodes
//! `runtime.allgadd`. Every anchored address must also lie in the module's data or bss.
use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, Mnemonic, OpKind, Register};
use thiserror::Error;

use super::StructOffsets;
use crate::{GoBinary, Unavailable, elf::PF_W};

/// ELF machine number of x86-64.
const EM_X86_64: u16 = 62;

/// Largest function decoded for an anchor (the anchors are a few hundred bytes).
const MAX_CODE: u64 = 16 << 10;

/// Why a runtime variable's address is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SymbolError {
    /// `.symtab` lookup failed (or, for `allgs`/`allglen` in stripped binaries, the
    /// `runtime.allgadd` anchor did).
    #[error("{0}")]
    Symtab(Unavailable),
    /// Code anchors exist for x86-64 only.
    #[error("no .symtab, and code anchors exist for x86-64 only")]
    NotX86,
    /// The anchor function is not in `.gopclntab`.
    #[error("no .symtab, and no {function} in .gopclntab")]
    NoFunction {
        /// The function.
        function: &'static str,
    },
    /// The anchor function's code could not be read (or is implausibly large).
    #[error("no .symtab, and the code of {function} cannot be read")]
    Code {
        /// The function.
        function: &'static str,
    },
    /// The anchor function does not show the expected pattern.
    #[error("no .symtab, and {function} does not show the expected pattern: {why}")]
    Pattern {
        /// The function.
        function: &'static str,
        /// What is missing or ambiguous.
        why: &'static str,
    },
    /// Two anchors of the same variable disagree.
    #[error("no .symtab, and the anchors of {symbol} disagree ({a:#x} vs {b:#x})")]
    Disagree {
        /// The variable.
        symbol: &'static str,
        /// One address.
        a: u64,
        /// The other.
        b: u64,
    },
    /// The anchored address is outside the module's data and bss.
    #[error("no .symtab, and the address {addr:#x} found for {symbol} lies outside data/bss")]
    OutsideData {
        /// The variable.
        symbol: &'static str,
        /// The address.
        addr: u64,
    },
}

impl SymbolError {
    /// A stable, low-cardinality name of the variant (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            SymbolError::Symtab(_) => "symtab",
            SymbolError::NotX86 => "not_x86",
            SymbolError::NoFunction { .. } => "no_function",
            SymbolError::Code { .. } => "code",
            SymbolError::Pattern { .. } => "pattern",
            SymbolError::Disagree { .. } => "disagree",
            SymbolError::OutsideData { .. } => "outside_data",
        }
    }
}

/// How an address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// `.symtab`.
    Symtab,
    /// The code of this function (for `sched`, the first of its two anchors).
    Code(&'static str),
}

/// A runtime variable's link-time virtual address and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// Link-time virtual address (add the load bias for a PIE).
    pub vaddr: u64,
    /// Where it came from.
    pub source: SymbolSource,
}

/// The runtime variables, each found or not with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSymbols {
    /// `runtime.allgs` (`[]*g`): every g ever created.
    pub allgs: Result<Located, SymbolError>,
    /// `runtime.allglen` (`uintptr`): `len(allgs)`, stored after the append.
    pub allglen: Result<Located, SymbolError>,
    /// `runtime.allm` (`*m`): head of the list of Ms, linked by `m.alllink`.
    pub allm: Result<Located, SymbolError>,
    /// `runtime.sched` (`schedt`).
    pub sched: Result<Located, SymbolError>,
    /// `runtime.gomaxprocs` (`int32`).
    pub gomaxprocs: Result<Located, SymbolError>,
    /// `runtime.allp` (`[]*p`).
    pub allp: Result<Located, SymbolError>,
}

/// The runtime variables of `bin`, from `.symtab`, else (stripped, or a symbol missing from it)
/// from code; `offsets` gives the `sched` fields the `sched` anchors touch.
pub fn runtime_symbols(bin: &GoBinary, offsets: &StructOffsets) -> RuntimeSymbols {
    if bin.stripped() {
        return from_code(bin, offsets);
    }
    let sym = |name| {
        bin.data_symbol(name)
            .map(|vaddr| Located {
                vaddr,
                source: SymbolSource::Symtab,
            })
            .map_err(SymbolError::Symtab)
    };
    let mut s = RuntimeSymbols {
        allgs: sym("runtime.allgs"),
        allglen: sym("runtime.allglen"),
        allm: sym("runtime.allm"),
        sched: sym("runtime.sched"),
        gomaxprocs: sym("runtime.gomaxprocs"),
        allp: sym("runtime.allp"),
    };
    // A .symtab without the symbol (or with one outside data): the code may still tell.
    if [
        &s.allgs,
        &s.allglen,
        &s.allm,
        &s.sched,
        &s.gomaxprocs,
        &s.allp,
    ]
    .iter()
    .any(|r| r.is_err())
    {
        let code = from_code(bin, offsets);
        for (mine, theirs) in [
            (&mut s.allgs, code.allgs),
            (&mut s.allglen, code.allglen),
            (&mut s.allm, code.allm),
            (&mut s.sched, code.sched),
            (&mut s.gomaxprocs, code.gomaxprocs),
            (&mut s.allp, code.allp),
        ] {
            if mine.is_err() && theirs.is_ok() {
                *mine = theirs;
            }
        }
    }
    s
}

/// The runtime variables of `bin` from code anchors only, ignoring `.symtab` (what a stripped
/// binary gets; tests compare it with `.symtab`).
pub fn from_code(bin: &GoBinary, offsets: &StructOffsets) -> RuntimeSymbols {
    let allg = |name| {
        bin.data_symbol_from_code(name)
            .map(|vaddr| Located {
                vaddr,
                source: SymbolSource::Code("runtime.allgadd"),
            })
            .map_err(SymbolError::Symtab)
    };
    let checked = |symbol: &'static str, function: &'static str, r: Result<u64, SymbolError>| {
        let vaddr = r?;
        if !in_data(bin, vaddr) {
            return Err(SymbolError::OutsideData {
                symbol,
                addr: vaddr,
            });
        }
        Ok(Located {
            vaddr,
            source: SymbolSource::Code(function),
        })
    };
    RuntimeSymbols {
        allgs: allg("runtime.allgs"),
        allglen: allg("runtime.allglen"),
        allm: checked("runtime.allm", MCOMMONINIT, allm(bin)),
        sched: checked("runtime.sched", MPUT, sched(bin, offsets)),
        gomaxprocs: checked("runtime.gomaxprocs", SCAVENGER_GOMAXPROCS, gomaxprocs(bin)),
        allp: checked("runtime.allp", PREEMPTALL, allp(bin)),
    }
}

const SCAVENGER_GOMAXPROCS: &str = "runtime.(*scavengerState).init.func4";
const PREEMPTALL: &str = "runtime.preemptall";
const MCOMMONINIT: &str = "runtime.mcommoninit";
const MPUT: &str = "runtime.mput";
const MRESERVEID: &str = "runtime.mReserveID";

fn in_data(bin: &GoBinary, addr: u64) -> bool {
    match bin.moduledata() {
        Some(md) => md.holds_data(addr),
        None => bin
            .load_segments()
            .any(|s| s.flags & PF_W != 0 && addr >= s.vaddr && addr - s.vaddr < s.memsz),
    }
}

/// The decoded instructions of `function` (up to the first undecodable byte).
fn decode(bin: &GoBinary, function: &'static str) -> Result<Vec<Instruction>, SymbolError> {
    if bin.elf().machine != EM_X86_64 {
        return Err(SymbolError::NotX86);
    }
    let f = bin
        .function(function)
        .ok_or(SymbolError::NoFunction { function })?;
    let len = f.end.saturating_sub(f.entry);
    if len == 0 || len > MAX_CODE {
        return Err(SymbolError::Code { function });
    }
    let mut code = vec![0u8; len as usize];
    bin.read_vaddr(f.entry, &mut code)
        .map_err(|_| SymbolError::Code { function })?;
    let mut decoder = Decoder::with_ip(64, &code, f.entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() {
            break;
        }
        out.push(insn);
    }
    Ok(out)
}

/// RIP-relative memory accesses (LEA computes an address and accesses nothing).
fn accesses(insns: &[Instruction]) -> impl Iterator<Item = &Instruction> {
    insns
        .iter()
        .filter(|i| i.is_ip_rel_memory_operand() && i.mnemonic() != Mnemonic::Lea)
}

/// `MOV r64, qword [rip+X]`: X.
fn qword_load(i: &Instruction) -> Option<u64> {
    (i.mnemonic() == Mnemonic::Mov
        && i.op0_kind() == OpKind::Register
        && i.op1_kind() == OpKind::Memory
        && i.is_ip_rel_memory_operand()
        && i.memory_size() == MemorySize::UInt64)
        .then(|| i.ip_rel_memory_address())
}

fn pattern(function: &'static str, why: &'static str) -> SymbolError {
    SymbolError::Pattern { function, why }
}

/// `return gomaxprocs`: `MOV r32, dword [rip+X]; RET` and nothing else.
fn gomaxprocs(bin: &GoBinary) -> Result<u64, SymbolError> {
    let insns = decode(bin, SCAVENGER_GOMAXPROCS)?;
    let body: Vec<&Instruction> = insns
        .iter()
        .take_while(|i| i.mnemonic() != Mnemonic::Ret)
        .collect();
    let ret = insns.get(body.len()).map(Instruction::mnemonic);
    match (body.as_slice(), ret) {
        ([load], Some(Mnemonic::Ret))
            if load.mnemonic() == Mnemonic::Mov
                && load.op0_kind() == OpKind::Register
                && load.is_ip_rel_memory_operand()
                && load.memory_size() == MemorySize::UInt32 =>
        {
            Ok(load.ip_rel_memory_address())
        }
        _ => Err(pattern(
            SCAVENGER_GOMAXPROCS,
            "body is not a single dword load and RET",
        )),
    }
}

/// `for _, pp := range allp`: qword loads of the slice's array and length, nothing else.
fn allp(bin: &GoBinary) -> Result<u64, SymbolError> {
    let insns = decode(bin, PREEMPTALL)?;
    let mut addrs = Vec::new();
    for i in accesses(&insns) {
        let a = qword_load(i).ok_or(pattern(
            PREEMPTALL,
            "a RIP-relative access other than a qword load",
        ))?;
        addrs.push(a);
    }
    addrs.sort_unstable();
    addrs.dedup();
    match addrs.as_slice() {
        [a, len] if a.checked_add(8) == Some(*len) => Ok(*a),
        _ => Err(pattern(
            PREEMPTALL,
            "RIP-relative loads are not exactly one slice's array and length",
        )),
    }
}

/// `mp.alllink = allm; atomicstorep(&allm, mp)`: a load of X, then `LEA r,[X]; XCHG [r],r2`.
fn allm(bin: &GoBinary) -> Result<u64, SymbolError> {
    let insns = decode(bin, MCOMMONINIT)?;
    let loaded: Vec<u64> = insns.iter().filter_map(qword_load).collect();
    let mut stored = Vec::new();
    for w in insns.windows(2) {
        let [lea, xchg] = w else { continue };
        if lea.mnemonic() == Mnemonic::Lea
            && lea.is_ip_rel_memory_operand()
            && xchg.mnemonic() == Mnemonic::Xchg
            && xchg.op0_kind() == OpKind::Memory
            && xchg.memory_base() == lea.op0_register()
            && xchg.memory_base() != Register::None
            && xchg.memory_index() == Register::None
            && xchg.memory_displacement64() == 0
            && xchg.memory_size() == MemorySize::UInt64
        {
            let a = lea.ip_rel_memory_address();
            if loaded.contains(&a) {
                stored.push(a);
            }
        }
    }
    stored.sort_unstable();
    stored.dedup();
    match stored.as_slice() {
        [a] => Ok(*a),
        [] => Err(pattern(
            MCOMMONINIT,
            "no atomic pointer store to a variable it also loads",
        )),
        _ => Err(pattern(MCOMMONINIT, "several candidate atomic stores")),
    }
}

/// `sched.nmidle++` in mput and `sched.mnext++` in mReserveID must name the same `sched`.
fn sched(bin: &GoBinary, offsets: &StructOffsets) -> Result<u64, SymbolError> {
    let mput = decode(bin, MPUT)?;
    let incs: Vec<u64> = mput
        .iter()
        .filter(|i| {
            i.mnemonic() == Mnemonic::Inc
                && i.op0_kind() == OpKind::Memory
                && i.is_ip_rel_memory_operand()
                && i.memory_size() == MemorySize::UInt32
        })
        .map(Instruction::ip_rel_memory_address)
        .collect();
    let nmidle = match incs.as_slice() {
        [a] => *a,
        _ => return Err(pattern(MPUT, "not exactly one INC of a RIP-relative dword")),
    };
    if offsets.sched_nmidle.size != 4 {
        return Err(pattern(MPUT, "sched.nmidle is not 4 bytes in this release"));
    }
    let a = nmidle
        .checked_sub(u64::from(offsets.sched_nmidle.offset))
        .ok_or(pattern(MPUT, "address below sched.nmidle's offset"))?;
    let reserve = decode(bin, MRESERVEID)?;
    let mut addrs: Vec<(u64, MemorySize)> = accesses(&reserve)
        .map(|i| (i.ip_rel_memory_address(), i.memory_size()))
        .collect();
    addrs.sort_unstable_by_key(|&(a, _)| a);
    addrs.dedup();
    let mnext = match addrs.as_slice() {
        [(a, MemorySize::UInt64)] => *a,
        _ => {
            return Err(pattern(
                MRESERVEID,
                "its RIP-relative accesses are not one qword variable",
            ));
        }
    };
    let b = mnext
        .checked_sub(u64::from(offsets.sched_mnext.offset))
        .ok_or(pattern(MRESERVEID, "address below sched.mnext's offset"))?;
    if a != b {
        return Err(SymbolError::Disagree {
            symbol: "runtime.sched",
            a,
            b,
        });
    }
    Ok(a)
}
