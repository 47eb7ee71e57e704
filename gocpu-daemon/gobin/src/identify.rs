//! Cheap identification of a binary, run on every exec'd process: ELF tables, notes and
//! `.go.buildinfo` only (a few small reads, whatever the file's size).
use crate::{
    buildid::{BuildIds, read_build_ids},
    buildinfo::{self, BuildInfo},
    elf::{ET_DYN, Elf},
    error::GobinError,
    source::ByteSource,
};

/// What made the binary look like Go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A `.go.buildinfo` blob with a Go version (Go 1.13+).
    BuildInfo,
    /// A Go build ID note but no build info.
    GoBuildId,
    /// A `.gopclntab` section but neither of the above.
    PclntabSection,
}

/// Facts known from a binary's headers, notes and build info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identification {
    /// Why this is taken to be a Go binary.
    pub evidence: Evidence,
    /// Go version from build info ("go1.25.5").
    pub go_version: Option<String>,
    /// Parsed build info.
    pub build_info: Option<BuildInfo>,
    /// GNU build ID (hex).
    pub gnu_build_id: Option<String>,
    /// Go build ID.
    pub go_build_id: Option<String>,
    /// ELF type is ET_DYN (position-independent).
    pub is_pie: bool,
    /// ELF machine (62 = x86-64).
    pub machine: u16,
}

/// Everything identification reads, kept for a full parse to reuse.
pub(crate) struct Front {
    pub elf: Elf,
    pub ids: BuildIds,
    pub build_info: Option<BuildInfo>,
}

/// Reads the ELF tables, build IDs and build info. Build info that is present but malformed is
/// treated as absent (the pclntab may still be usable); I/O errors are returned.
pub(crate) fn front(src: &dyn ByteSource) -> Result<Front, GobinError> {
    let elf = Elf::parse(src)?;
    let ids = read_build_ids(&elf, src)?;
    let build_info = match buildinfo::locate(&elf, src)? {
        Some(loc) => match buildinfo::read(&elf, src, loc) {
            Ok(bi) => Some(bi),
            Err(GobinError::Source(e)) => return Err(GobinError::Source(e)),
            Err(_) => None,
        },
        None => None,
    };
    Ok(Front {
        elf,
        ids,
        build_info,
    })
}

impl Front {
    pub(crate) fn evidence(&self) -> Option<Evidence> {
        if self.build_info.is_some() {
            Some(Evidence::BuildInfo)
        } else if self.ids.go.is_some() {
            Some(Evidence::GoBuildId)
        } else if self.elf.section(".gopclntab").is_some() {
            Some(Evidence::PclntabSection)
        } else {
            None
        }
    }

    pub(crate) fn identification(&self, evidence: Evidence) -> Identification {
        Identification {
            evidence,
            go_version: self.build_info.as_ref().map(|b| b.go_version.clone()),
            build_info: self.build_info.clone(),
            gnu_build_id: self.ids.gnu.clone(),
            go_build_id: self.ids.go.clone(),
            is_pie: self.elf.e_type == ET_DYN,
            machine: self.elf.machine,
        }
    }
}

/// Identifies a binary without reading its code or tables: is it Go, which version, which
/// build IDs. Returns [`GobinError::NotElf`] or [`GobinError::NotGo`] for other files.
pub fn identify(src: &dyn ByteSource) -> Result<Identification, GobinError> {
    let f = front(src)?;
    let evidence = f.evidence().ok_or(GobinError::NotGo {
        reason: "no .go.buildinfo, Go build ID note or .gopclntab section",
    })?;
    Ok(f.identification(evidence))
}
