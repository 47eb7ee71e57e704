//! Uprobe sites of one Go function: every RET, and the cheapest safe entry instruction.
//!
//! Go functions are probed at each RET instead of with uretprobes (a hijacked return address
//! crashes Go, docs/measurements.md). [`find_sites`] decodes the function's whole
//! `[entry, end)` range with iced-x86 from the entry, one instruction after another, so every
//! reported address is an instruction boundary; a byte that does not decode makes the whole
//! function an error rather than a guess, because a probe in the middle of an instruction
//! corrupts the target.
//!
//! Exits that are not a RET are listed too, so a caller can tell when the RETs do not cover every
//! way out: direct jumps leaving the range (tail calls, e.g. `runtime.morestack_noctxt`) and
//! indirect jumps (jump tables or tail calls; `runtime.gogo` ends with one). Functions such as
//! `runtime.mcall` never return through their RET at all: the goroutine resumes in the caller via
//! `gogo`. Returns taken by panics or `runtime.Goexit` are not seen either.

mod prologue;
mod uprobe;

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind};
use thiserror::Error;

pub use prologue::{EntrySemantics, EntrySite, SiteInstruction};
pub use uprobe::{UprobeHandling, handling as uprobe_handling};

/// Largest function body [`find_sites`] decodes (the biggest Go functions are a few hundred KiB).
pub const MAX_FUNCTION_BYTES: usize = 4 << 20;

/// Probe sites of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSites {
    /// The cheapest entry site whose register and stack arguments are those of the call, or
    /// `None` when the kernel would refuse even the first instruction.
    pub entry: Option<EntrySite>,
    /// Virtual addresses of every RET the kernel accepts a uprobe on, ascending.
    pub rets: Vec<u64>,
    /// RETs the kernel would refuse (a bad prefix); never produced by Go's toolchain.
    pub rejected_rets: Vec<u64>,
    /// Direct jumps and conditional jumps whose target lies outside `[entry, end)`: tail calls.
    pub tail_jumps: Vec<u64>,
    /// Indirect jumps (`jmp reg`, `jmp [mem]`): jump tables or tail calls, not resolved.
    pub indirect_jumps: Vec<u64>,
    /// Number of instructions decoded in `[entry, end)`, padding included.
    pub instructions: usize,
}

/// Why [`find_sites`] gave no sites.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SitesError {
    /// The code range is empty.
    #[error("empty function body at {entry:#x}")]
    Empty {
        /// The function's entry.
        entry: u64,
    },
    /// The code range is longer than [`MAX_FUNCTION_BYTES`].
    #[error("function at {entry:#x} is {len} bytes, over the {MAX_FUNCTION_BYTES}-byte limit")]
    TooLarge {
        /// The function's entry.
        entry: u64,
        /// Length of the code given.
        len: usize,
    },
    /// `entry + len` overflows the address space.
    #[error("function at {entry:#x} with {len} bytes wraps the address space")]
    AddressOverflow {
        /// The function's entry.
        entry: u64,
        /// Length of the code given.
        len: usize,
    },
    /// Bytes at `vaddr` are not a valid x86-64 instruction.
    #[error("undecodable instruction at {vaddr:#x}")]
    Undecodable {
        /// Address of the first undecodable byte.
        vaddr: u64,
    },
    /// The last instruction runs past the end of the range.
    #[error("instruction at {vaddr:#x} is cut off by the end of the function")]
    Truncated {
        /// Address of the cut-off instruction.
        vaddr: u64,
    },
}

impl SitesError {
    /// A stable name for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            SitesError::Empty { .. } => "empty",
            SitesError::TooLarge { .. } => "too_large",
            SitesError::AddressOverflow { .. } => "address_overflow",
            SitesError::Undecodable { .. } => "undecodable",
            SitesError::Truncated { .. } => "truncated",
        }
    }
}

/// One decoded instruction with the bytes it was decoded from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decoded<'a> {
    pub insn: Instruction,
    pub bytes: &'a [u8],
}

/// Decodes `code` (the bytes of `[entry, entry + code.len())`) and returns its probe sites.
///
/// Pure and bounded: at most one pass over `code`, allocations proportional to the number of
/// instructions. Every byte of the range must decode; a truncated last instruction or an invalid
/// encoding anywhere is an error (Go pads functions with INT3, which decodes).
pub fn find_sites(code: &[u8], entry: u64) -> Result<ProbeSites, SitesError> {
    let decoded = decode_all(code, entry)?;
    let end = entry + code.len() as u64;
    let mut sites = ProbeSites {
        entry: None,
        rets: Vec::new(),
        rejected_rets: Vec::new(),
        tail_jumps: Vec::new(),
        indirect_jumps: Vec::new(),
        instructions: decoded.len(),
    };
    for d in &decoded {
        let insn = &d.insn;
        match insn.mnemonic() {
            Mnemonic::Ret | Mnemonic::Retf => {
                if uprobe::handling(d.bytes) == UprobeHandling::Rejected {
                    sites.rejected_rets.push(insn.ip());
                } else {
                    sites.rets.push(insn.ip());
                }
            }
            _ if is_direct_branch(insn) && !is_call(insn) => {
                let target = insn.near_branch_target();
                if target < entry || target >= end {
                    sites.tail_jumps.push(insn.ip());
                }
            }
            Mnemonic::Jmp => sites.indirect_jumps.push(insn.ip()),
            _ => {}
        }
    }
    sites.entry = prologue::entry_site(&decoded, entry, end);
    Ok(sites)
}

/// Whether `insn` is a jmp/jcc/call with a relative target.
pub(crate) fn is_direct_branch(insn: &Instruction) -> bool {
    matches!(
        insn.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
}

fn is_call(insn: &Instruction) -> bool {
    insn.mnemonic() == Mnemonic::Call
}

fn decode_all(code: &[u8], entry: u64) -> Result<Vec<Decoded<'_>>, SitesError> {
    let len = code.len();
    if len == 0 {
        return Err(SitesError::Empty { entry });
    }
    if len > MAX_FUNCTION_BYTES {
        return Err(SitesError::TooLarge { entry, len });
    }
    if entry.checked_add(len as u64).is_none() {
        return Err(SitesError::AddressOverflow { entry, len });
    }
    // Bitness 64 is always valid, so this cannot fail; map it anyway rather than unwrap.
    let mut decoder = Decoder::try_with_ip(64, code, entry, DecoderOptions::NONE)
        .map_err(|_| SitesError::Undecodable { vaddr: entry })?;
    let mut out = Vec::with_capacity(len / 4);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        let start = decoder.position();
        decoder.decode_out(&mut insn);
        let vaddr = entry + start as u64;
        match decoder.last_error() {
            DecoderError::None => {}
            DecoderError::NoMoreBytes => return Err(SitesError::Truncated { vaddr }),
            _ => return Err(SitesError::Undecodable { vaddr }),
        }
        let bytes = code
            .get(start..decoder.position())
            .ok_or(SitesError::Truncated { vaddr })?;
        out.push(Decoded { insn, bytes });
    }
    Ok(out)
}
