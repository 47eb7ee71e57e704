//! The gimli walk: find the named struct types, then resolve member paths and their types.
//!
//! Go's linker puts every type in one compilation unit and refers to types across units with
//! `DW_FORM_ref_addr`, so references are handled as `.debug_info` offsets and the unit holding
//! one is found by binary search over the unit headers.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use gimli::{
    Abbreviations, AttributeValue, DebugAbbrev, DebugInfo, DebugInfoOffset, DebugLineStr, DebugStr,
    DwTag, EndianSlice, LittleEndian, UnitHeader, UnitOffset, constants,
};

use super::{DwarfError, FieldInfo};
use crate::offsets::{Field, FieldKind, FieldSpec};

type R<'d> = EndianSlice<'d, LittleEndian>;

/// Most compilation units accepted (a big Go binary has a few thousand).
const MAX_UNITS: usize = 1 << 17;
/// Most members read from one struct (runtime.m has ~100).
const MAX_MEMBERS: usize = 8192;
/// Longest typedef / wrapper chain followed.
const MAX_TYPE_DEPTH: usize = 16;

fn malformed(what: &'static str) -> DwarfError {
    DwarfError::Malformed { what }
}

/// What the reader needs from one DIE.
#[derive(Debug, Default)]
struct Die {
    tag: Option<DwTag>,
    name: Option<String>,
    byte_size: Option<u64>,
    encoding: Option<gimli::DwAte>,
    type_ref: Option<DebugInfoOffset>,
}

#[derive(Debug)]
struct Member {
    name: String,
    offset: u64,
    type_ref: DebugInfoOffset,
}

struct Ctx<'d> {
    abbrev: DebugAbbrev<R<'d>>,
    str: DebugStr<R<'d>>,
    line_str: DebugLineStr<R<'d>>,
    headers: Vec<UnitHeader<R<'d>>>,
    /// Parsed abbreviation tables by `.debug_abbrev` offset (Go units share one).
    abbrevs: HashMap<usize, Arc<Abbreviations>>,
}

pub(super) fn read_fields(
    data: &[Cow<'_, [u8]>; 4],
    specs: &[FieldSpec],
) -> Result<Vec<FieldInfo>, DwarfError> {
    let section = |i: usize| EndianSlice::new(data.get(i).map_or(&[][..], |c| c), LittleEndian);
    let mut ctx = Ctx::new(
        DebugInfo::from(section(0)),
        DebugAbbrev::from(section(1)),
        DebugStr::from(section(2)),
        DebugLineStr::from(section(3)),
    )?;
    let mut wanted: Vec<&'static str> = specs.iter().map(|s| s.strukt).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let roots = ctx.find_structs(&wanted)?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let root = roots
            .iter()
            .find(|(n, _)| *n == spec.strukt)
            .and_then(|(_, o)| *o)
            .ok_or(DwarfError::TypeNotFound { name: spec.strukt })?;
        out.push(ctx.field(root, spec)?);
    }
    Ok(out)
}

impl<'d> Ctx<'d> {
    fn new(
        info: DebugInfo<R<'d>>,
        abbrev: DebugAbbrev<R<'d>>,
        str: DebugStr<R<'d>>,
        line_str: DebugLineStr<R<'d>>,
    ) -> Result<Ctx<'d>, DwarfError> {
        let mut headers = Vec::new();
        let mut iter = info.units();
        while let Some(h) = iter.next()? {
            if headers.len() >= MAX_UNITS {
                return Err(DwarfError::Limit { what: "units" });
            }
            headers.push(h);
        }
        let abbrevs = HashMap::new();
        Ok(Ctx {
            abbrev,
            str,
            line_str,
            headers,
            abbrevs,
        })
    }

    /// Header and abbreviations of unit `index`.
    fn unit(
        &mut self,
        index: usize,
    ) -> Result<(UnitHeader<R<'d>>, Arc<Abbreviations>), DwarfError> {
        let header = *self.headers.get(index).ok_or(malformed("unit index"))?;
        let key = header.debug_abbrev_offset().0;
        if let Some(a) = self.abbrevs.get(&key) {
            return Ok((header, a.clone()));
        }
        let a = Arc::new(header.abbreviations(&self.abbrev)?);
        self.abbrevs.insert(key, a.clone());
        Ok((header, a))
    }

    /// The bytes of a name attribute; `None` for string forms gocpu does not resolve (strx).
    fn string(&self, value: AttributeValue<R<'d>>) -> Result<Option<&'d [u8]>, DwarfError> {
        Ok(match value {
            AttributeValue::String(s) => Some(s.slice()),
            AttributeValue::DebugStrRef(o) => Some(self.str.get_str(o)?.slice()),
            AttributeValue::DebugLineStrRef(o) => Some(self.line_str.get_str(o)?.slice()),
            _ => None,
        })
    }

    /// The unit holding `.debug_info` offset `off`, and `off` relative to it.
    fn locate(&self, off: DebugInfoOffset) -> Result<(usize, UnitOffset), DwarfError> {
        let start = |h: &UnitHeader<R<'d>>| {
            h.offset()
                .as_debug_info_offset()
                .map_or(usize::MAX, |o| o.0)
        };
        let index = self
            .headers
            .partition_point(|h| start(h) <= off.0)
            .checked_sub(1)
            .ok_or(malformed("reference before the first unit"))?;
        let header = self.headers.get(index).ok_or(malformed("reference"))?;
        let unit_off = off
            .to_unit_offset(header)
            .ok_or(malformed("reference outside every unit"))?;
        Ok((index, unit_off))
    }

    /// For each wanted name (sorted), the first struct type DIE carrying it.
    fn find_structs(
        &mut self,
        wanted: &[&'static str],
    ) -> Result<Vec<(&'static str, Option<DebugInfoOffset>)>, DwarfError> {
        let mut found: Vec<(&'static str, Option<DebugInfoOffset>)> =
            wanted.iter().map(|w| (*w, None)).collect();
        let mut missing = found.len();
        for index in 0..self.headers.len() {
            if missing == 0 {
                break;
            }
            let (header, abbrevs) = self.unit(index)?;
            let mut cursor = header.entries(&abbrevs);
            while let Some((_, entry)) = cursor.next_dfs()? {
                if entry.tag() != constants::DW_TAG_structure_type {
                    continue;
                }
                let Some(name) = entry.attr_value(constants::DW_AT_name)? else {
                    continue;
                };
                let Some(name) = self.string(name)? else {
                    continue;
                };
                let Ok(i) = found.binary_search_by(|(w, _)| w.as_bytes().cmp(name)) else {
                    continue;
                };
                if let Some((_, slot @ None)) = found.get_mut(i) {
                    *slot = entry.offset().to_debug_info_offset(&header);
                    missing -= 1;
                }
            }
        }
        Ok(found)
    }

    fn die(&mut self, off: DebugInfoOffset) -> Result<Die, DwarfError> {
        let (index, unit_off) = self.locate(off)?;
        let (header, abbrevs) = self.unit(index)?;
        let entry = header.entry(&abbrevs, unit_off)?;
        let mut die = Die {
            tag: Some(entry.tag()),
            ..Die::default()
        };
        let mut attrs = entry.attrs();
        while let Some(attr) = attrs.next()? {
            match attr.name() {
                constants::DW_AT_name => {
                    die.name = self
                        .string(attr.value())?
                        .map(|n| String::from_utf8_lossy(n).into_owned());
                }
                constants::DW_AT_byte_size => die.byte_size = attr.udata_value(),
                constants::DW_AT_encoding => {
                    if let AttributeValue::Encoding(e) = attr.value() {
                        die.encoding = Some(e);
                    }
                }
                constants::DW_AT_type => die.type_ref = Some(reference(&header, attr.value())?),
                _ => {}
            }
        }
        Ok(die)
    }

    fn members(&mut self, off: DebugInfoOffset) -> Result<Vec<Member>, DwarfError> {
        let (index, unit_off) = self.locate(off)?;
        let (header, abbrevs) = self.unit(index)?;
        let mut tree = header.entries_tree(&abbrevs, Some(unit_off))?;
        let root = tree.root()?;
        let mut children = root.children();
        let mut out = Vec::new();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != constants::DW_TAG_member {
                continue;
            }
            if out.len() >= MAX_MEMBERS {
                return Err(DwarfError::Limit { what: "members" });
            }
            let name = match entry.attr_value(constants::DW_AT_name)? {
                Some(v) => self
                    .string(v)?
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .unwrap_or_default(),
                None => String::new(),
            };
            let offset = match entry.attr_value(constants::DW_AT_data_member_location)? {
                Some(AttributeValue::Exprloc(expr)) => plus_uconst(expr.0.slice())?,
                Some(v) => v.udata_value().ok_or(malformed("member location"))?,
                None => 0,
            };
            let type_ref = entry
                .attr_value(constants::DW_AT_type)?
                .ok_or(malformed("member without a type"))?;
            out.push(Member {
                name,
                offset,
                type_ref: reference(&header, type_ref)?,
            });
        }
        Ok(out)
    }

    /// Follows typedefs from `off` to the first other DIE.
    fn strip_typedefs(
        &mut self,
        mut off: DebugInfoOffset,
    ) -> Result<(DebugInfoOffset, Die), DwarfError> {
        for _ in 0..MAX_TYPE_DEPTH {
            let die = self.die(off)?;
            if die.tag != Some(constants::DW_TAG_typedef) {
                return Ok((off, die));
            }
            off = die.type_ref.ok_or(malformed("typedef without a type"))?;
        }
        Err(DwarfError::Limit {
            what: "typedef chain",
        })
    }

    fn field(&mut self, root: DebugInfoOffset, spec: &FieldSpec) -> Result<FieldInfo, DwarfError> {
        for path in spec.paths {
            let Some((offset, type_ref)) = self.member_path(root, path)? else {
                continue;
            };
            let type_name = self.die(type_ref)?.name.unwrap_or_default();
            let (size, kind) = self.field_type(type_ref).map_err(|reason| match reason {
                Scalar::Dwarf(e) => e,
                Scalar::Unreadable(reason) => DwarfError::UnreadableType {
                    strukt: spec.strukt,
                    path,
                    reason,
                },
            })?;
            let offset = u32::try_from(offset).map_err(|_| DwarfError::Limit {
                what: "member offset",
            })?;
            return Ok(FieldInfo {
                name: spec.name,
                strukt: spec.strukt,
                path,
                type_name,
                field: Field { offset, size, kind },
            });
        }
        Err(DwarfError::MemberNotFound {
            strukt: spec.strukt,
            path: spec.paths.first().copied().unwrap_or_default(),
        })
    }

    /// Offset and type of the member at dotted `path` under struct `root`; `None` if absent.
    fn member_path(
        &mut self,
        root: DebugInfoOffset,
        path: &str,
    ) -> Result<Option<(u64, DebugInfoOffset)>, DwarfError> {
        let mut strukt = root;
        let mut total = 0u64;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let members = self.members(strukt)?;
            let Some(m) = members.into_iter().find(|m| m.name == part) else {
                return Ok(None);
            };
            total = total.checked_add(m.offset).ok_or(DwarfError::Limit {
                what: "member offset",
            })?;
            if parts.peek().is_none() {
                return Ok(Some((total, m.type_ref)));
            }
            let (inner, die) = self.strip_typedefs(m.type_ref)?;
            if die.tag != Some(constants::DW_TAG_structure_type) {
                return Ok(None);
            }
            strukt = inner;
        }
        Ok(None)
    }

    /// Size and kind of a field's type: a readable scalar, or an array of 8-byte unsigned
    /// counters.
    fn field_type(&mut self, off: DebugInfoOffset) -> Result<(u32, FieldKind), Scalar> {
        let (_, die) = self.strip_typedefs(off)?;
        if die.tag != Some(constants::DW_TAG_array_type) {
            return self.scalar(off, 0);
        }
        let element = die
            .type_ref
            .ok_or(Scalar::Dwarf(malformed("array without an element type")))?;
        if self.scalar(element, 0)? != (8, FieldKind::Unsigned) {
            return Err(Scalar::Unreadable(
                "array of other than 8-byte unsigned counters",
            ));
        }
        match die.byte_size.and_then(|s| u32::try_from(s).ok()) {
            Some(size) if size > 0 && size % 8 == 0 => Ok((size, FieldKind::Counters)),
            _ => Err(Scalar::Unreadable(
                "array size not a positive multiple of 8",
            )),
        }
    }

    /// Size and kind of a readable scalar type, looking through typedefs and one-field wrappers.
    fn scalar(&mut self, off: DebugInfoOffset, depth: usize) -> Result<(u32, FieldKind), Scalar> {
        if depth >= MAX_TYPE_DEPTH {
            return Err(Scalar::Dwarf(DwarfError::Limit { what: "type chain" }));
        }
        let (off, die) = self.strip_typedefs(off)?;
        let size = |die: &Die| -> Result<u32, Scalar> {
            die.byte_size
                .and_then(|s| u32::try_from(s).ok())
                .ok_or(Scalar::Unreadable("no byte size"))
        };
        match die.tag {
            Some(constants::DW_TAG_pointer_type) => Ok((
                die.byte_size.map_or(Ok(8), |_| size(&die))?,
                FieldKind::Pointer,
            )),
            Some(constants::DW_TAG_base_type) => {
                let kind = match die.encoding {
                    Some(constants::DW_ATE_unsigned | constants::DW_ATE_unsigned_char) => {
                        FieldKind::Unsigned
                    }
                    Some(constants::DW_ATE_signed | constants::DW_ATE_signed_char) => {
                        FieldKind::Signed
                    }
                    Some(constants::DW_ATE_boolean) => FieldKind::Bool,
                    _ => return Err(Scalar::Unreadable("not an integer or bool encoding")),
                };
                let size = size(&die)?;
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(Scalar::Unreadable("integer size not 1, 2, 4 or 8"));
                }
                Ok((size, kind))
            }
            Some(constants::DW_TAG_structure_type) => {
                // atomic.Int32 and friends: zero-size markers (noCopy, align64) plus one value.
                let total = size(&die)?;
                let mut value = None;
                for m in self.members(off)? {
                    let (_, mdie) = self.strip_typedefs(m.type_ref)?;
                    if mdie.byte_size == Some(0) {
                        continue;
                    }
                    if value.is_some() {
                        return Err(Scalar::Unreadable("struct with more than one field"));
                    }
                    value = Some(m);
                }
                let m = value.ok_or(Scalar::Unreadable("empty struct"))?;
                let (msize, kind) = self.scalar(m.type_ref, depth + 1)?;
                if m.offset != 0 || msize != total {
                    return Err(Scalar::Unreadable("wrapper struct with padding"));
                }
                Ok((msize, kind))
            }
            _ => Err(Scalar::Unreadable(
                "not an integer, bool, pointer or wrapper",
            )),
        }
    }
}

/// Why [`Ctx::scalar`] failed: bad DWARF, or a well-formed type gocpu cannot read.
enum Scalar {
    Dwarf(DwarfError),
    Unreadable(&'static str),
}

impl From<DwarfError> for Scalar {
    fn from(e: DwarfError) -> Self {
        Scalar::Dwarf(e)
    }
}

/// A type reference as a `.debug_info` offset.
fn reference(
    header: &UnitHeader<R<'_>>,
    value: AttributeValue<R<'_>>,
) -> Result<DebugInfoOffset, DwarfError> {
    match value {
        AttributeValue::UnitRef(o) => o
            .to_debug_info_offset(header)
            .ok_or(malformed("type unit reference")),
        AttributeValue::DebugInfoRef(o) => Ok(o),
        _ => Err(malformed("type reference form")),
    }
}

/// `DW_OP_plus_uconst N` — the only location expression a struct member needs.
fn plus_uconst(expr: &[u8]) -> Result<u64, DwarfError> {
    let (&op, rest) = expr
        .split_first()
        .ok_or(malformed("empty member location"))?;
    if op != constants::DW_OP_plus_uconst.0 {
        return Err(malformed("member location is not DW_OP_plus_uconst"));
    }
    let mut r = EndianSlice::new(rest, LittleEndian);
    let v = gimli::leb128::read::unsigned(&mut r)?;
    if !r.is_empty() {
        return Err(malformed("trailing bytes in member location"));
    }
    Ok(v)
}
