//! Build IDs: the GNU one (`.note.gnu.build-id`) and Go's (`.note.go.buildid`).
use crate::{
    bytes::{Data, Endian, usize_of},
    elf::{Elf, PT_NOTE},
    error::GobinError,
    limits,
    source::{ByteSource, SourceError, read_vec},
};

/// Note type of GNU build IDs (`NT_GNU_BUILD_ID`).
const NT_GNU_BUILD_ID: u32 = 3;
/// Note type Go's linker uses for its build ID (cmd/link `ELF_NOTE_GOBUILDID_TAG`).
const NT_GO_BUILD_ID: u32 = 4;

/// Build IDs found in a binary's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildIds {
    /// GNU build ID as lowercase hex.
    pub gnu: Option<String>,
    /// Go build ID (`actionID/contentID` pairs separated by `/`).
    pub go: Option<String>,
}

/// Reads the build IDs from note sections, or from PT_NOTE segments when sections are absent.
pub fn read_build_ids(elf: &Elf, src: &dyn ByteSource) -> Result<BuildIds, GobinError> {
    let mut ids = BuildIds::default();
    let mut blobs: Vec<(u64, u64, u64)> = elf
        .sections
        .iter()
        .filter(|s| s.kind == 7) // SHT_NOTE
        .map(|s| (s.offset, s.size, s.align))
        .collect();
    if blobs.is_empty() {
        blobs = elf
            .segments
            .iter()
            .filter(|s| s.kind == PT_NOTE)
            .map(|s| (s.offset, s.filesz, s.align))
            .collect();
    }
    for (offset, size, align) in blobs.into_iter().take(64) {
        if size > limits::MAX_NOTES {
            continue;
        }
        let bytes = match read_vec(src, offset, size, limits::MAX_NOTES) {
            Ok(b) => b,
            // A note table pointing outside the file is ignored: build IDs are optional.
            Err(SourceError::OutOfBounds { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        parse_notes(&bytes, elf.endian, align, &mut ids);
    }
    Ok(ids)
}

/// Parses a note blob; notes are 4-byte aligned except in 8-aligned blobs (gnu.property).
pub(crate) fn parse_notes(bytes: &[u8], endian: Endian, align: u64, ids: &mut BuildIds) {
    let align: usize = if align == 8 { 8 } else { 4 };
    let up = |v: usize| v.checked_add(align - 1).map(|x| x & !(align - 1));
    let d = Data::new(bytes, endian);
    let mut off = 0usize;
    for _ in 0..1024 {
        let (Some(namesz), Some(descsz), Some(kind)) = (d.u32(off), d.u32(off + 4), d.u32(off + 8))
        else {
            return;
        };
        let (Some(namesz), Some(descsz)) = (usize_of(namesz.into()), usize_of(descsz.into()))
        else {
            return;
        };
        let name_off = off + 12;
        let Some(desc_off) = name_off.checked_add(namesz).and_then(up) else {
            return;
        };
        let Some(next) = desc_off.checked_add(descsz).and_then(up) else {
            return;
        };
        let (Some(name), Some(desc)) = (d.slice(name_off, namesz), d.slice(desc_off, descsz))
        else {
            return;
        };
        let name_len = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let name = name.get(..name_len).unwrap_or_default();
        match (name, kind) {
            (b"GNU", NT_GNU_BUILD_ID)
                if ids.gnu.is_none() && desc.len() <= limits::MAX_BUILD_ID =>
            {
                ids.gnu = Some(desc.iter().map(|b| format!("{b:02x}")).collect());
            }
            (b"Go", NT_GO_BUILD_ID) if ids.go.is_none() && desc.len() <= limits::MAX_BUILD_ID => {
                let s = desc.split(|&b| b == 0).next().unwrap_or(desc);
                ids.go = Some(String::from_utf8_lossy(s).into_owned());
            }
            _ => {}
        }
        if next <= off || next >= bytes.len() {
            return;
        }
        off = next;
    }
}
