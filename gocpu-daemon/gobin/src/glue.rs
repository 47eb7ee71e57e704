//! [`GoBinary`] methods that feed its bytes to the probe-site decoder ([`crate::sites`]) and the
//! struct-offset sources ([`crate::dwarf`], [`crate::offsets`]).
use std::borrow::Cow;

use thiserror::Error;

use crate::{
    binary::GoBinary,
    dwarf::{self, DwarfError},
    error::GobinError,
    offsets::{self, OffsetsSource, StructOffsets, Unsupported},
    sites::{self, MAX_FUNCTION_BYTES, ProbeSites, SitesError},
    source::{SourceError, read_vec},
};

/// `sh_flags` bit of sections compressed with an `Elf64_Chdr`.
const SHF_COMPRESSED: u64 = 0x800;

/// Why a function's probe sites are unknown.
#[derive(Debug, Error)]
pub enum ProbeSitesError {
    /// `.gopclntab` has no function of this name.
    #[error("no function {0} in .gopclntab")]
    NoFunction(String),
    /// The function's code could not be read from the file.
    #[error("cannot read the code of {name}: {source}")]
    Code {
        /// The function.
        name: String,
        /// The read error.
        source: GobinError,
    },
    /// The code did not decode into usable sites.
    #[error("{0}")]
    Sites(#[from] SitesError),
}

/// Why no struct offsets are known for a binary.
#[derive(Debug, Error)]
#[error("no struct offsets: DWARF: {dwarf}; table: {table}")]
pub struct OffsetsUnavailable {
    /// Why the binary's DWARF gave none (`NoDwarf` for stripped binaries).
    pub dwarf: DwarfError,
    /// Why the generated table has none for this version.
    pub table: Unsupported,
}

impl GoBinary {
    /// Uprobe sites (every RET, the cheapest entry instruction) of the function `name`,
    /// decoded from its `[entry, end)` bytes.
    pub fn probe_sites(&self, name: &str) -> Result<ProbeSites, ProbeSitesError> {
        let f = self
            .function(name)
            .ok_or_else(|| ProbeSitesError::NoFunction(name.to_string()))?;
        let len = f.end.saturating_sub(f.entry);
        if len > MAX_FUNCTION_BYTES as u64 {
            return Err(SitesError::TooLarge {
                entry: f.entry,
                len: len as usize,
            }
            .into());
        }
        let mut code = vec![0u8; len as usize];
        self.read_vaddr(f.entry, &mut code)
            .map_err(|source| ProbeSitesError::Code {
                name: name.to_string(),
                source,
            })?;
        Ok(sites::find_sites(&code, f.entry)?)
    }

    /// Decompressed bytes of DWARF section `name` (also found as `.zdebug_*`).
    fn dwarf_section(&self, name: &'static str) -> Result<Option<Cow<'static, [u8]>>, DwarfError> {
        let z = name.replacen(".debug_", ".zdebug_", 1);
        let Some(s) = self.elf().section(name).or_else(|| self.elf().section(&z)) else {
            return Ok(None);
        };
        let Some((off, size)) = s.file_range() else {
            return Ok(None);
        };
        let raw = read_vec(self.source(), off, size, dwarf::MAX_SECTION_BYTES as u64).map_err(
            |e| match e {
                SourceError::OutOfBounds { .. } => DwarfError::SectionTooLarge {
                    section: name.to_string(),
                    size,
                },
                _ => DwarfError::Decompression {
                    section: name.to_string(),
                },
            },
        )?;
        let out = dwarf::section_contents(&s.name, &raw, s.flags & SHF_COMPRESSED != 0)?;
        Ok(Some(Cow::Owned(out.into_owned())))
    }

    /// Runtime struct offsets: from the binary's own DWARF when it has usable DWARF, else from
    /// the generated per-version table; both reasons when neither works.
    pub fn struct_offsets(&self) -> Result<(StructOffsets, OffsetsSource), OffsetsUnavailable> {
        let dwarf = dwarf::struct_offsets(|name| self.dwarf_section(name));
        match dwarf {
            Ok(o) => Ok((o, OffsetsSource::Dwarf)),
            Err(dwarf) => {
                let version = self.go_version().unwrap_or("");
                match offsets::table_row(version) {
                    Ok(m) => Ok((m.row.offsets, m.source(version))),
                    Err(table) => Err(OffsetsUnavailable { dwarf, table }),
                }
            }
        }
    }
}
