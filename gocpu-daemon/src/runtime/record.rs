//! Decoding struct fields out of a byte range read from the target.
//!
//! Each reader reads one contiguous span per struct covering the fields it needs (one syscall
//! iovec per g or m), then decodes the fields from that span.
use gocpu_gobin::offsets::{Field, FieldKind};

/// The smallest byte range of a struct that holds a set of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte inside the struct.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Longest span accepted (a g or m is a few hundred bytes; offsets come from DWARF or the table).
const MAX_SPAN: u32 = 4096;

impl Span {
    /// The span covering `fields`, or None if there are none or it would exceed [`MAX_SPAN`].
    pub fn of(fields: &[Field]) -> Option<Span> {
        let start = fields.iter().map(|f| f.offset).min()?;
        let end = fields
            .iter()
            .map(|f| f.offset.checked_add(f.size))
            .collect::<Option<Vec<u32>>>()?
            .into_iter()
            .max()?;
        let len = end.checked_sub(start).filter(|&l| l > 0 && l <= MAX_SPAN)?;
        Some(Span { start, len })
    }

    /// The span's length as a buffer size.
    pub fn size(self) -> usize {
        self.len as usize
    }

    /// The address of the span inside a struct at `base`.
    pub fn addr(self, base: u64) -> Option<u64> {
        base.checked_add(u64::from(self.start))
    }

    /// The raw bytes of `f`, zero-extended to u64 (little-endian).
    pub fn get(self, rec: &[u8], f: Field) -> Option<u64> {
        let from = f.offset.checked_sub(self.start)? as usize;
        let bytes = rec.get(from..from.checked_add(f.size as usize)?)?;
        if bytes.len() > 8 {
            return None;
        }
        let mut b = [0u8; 8];
        b.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(u64::from_le_bytes(b))
    }

    /// `f` as a signed value (sign-extended when the field is signed).
    pub fn get_i64(self, rec: &[u8], f: Field) -> Option<i64> {
        let raw = self.get(rec, f)?;
        if f.kind != FieldKind::Signed || f.size >= 8 {
            return Some(raw as i64);
        }
        let shift = 64 - 8 * f.size;
        Some(((raw << shift) as i64) >> shift)
    }

    /// `f` as a Go bool (any non-zero byte is true).
    pub fn get_bool(self, rec: &[u8], f: Field) -> Option<bool> {
        self.get(rec, f).map(|v| v != 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use gocpu_gobin::offsets::{Field, FieldKind};

    use super::Span;

    fn field(offset: u32, size: u32, kind: FieldKind) -> Field {
        Field { offset, size, kind }
    }

    #[test]
    fn spans_and_sign_extension() {
        let a = field(8, 4, FieldKind::Signed);
        let b = field(16, 8, FieldKind::Unsigned);
        let s = Span::of(&[b, a]).unwrap();
        assert_eq!((s.start, s.len), (8, 16));
        let mut rec = vec![0u8; 16];
        rec[..4].copy_from_slice(&(-5i32).to_le_bytes());
        rec[8..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(s.get_i64(&rec, a), Some(-5));
        assert_eq!(s.get(&rec, a), Some(0xffff_fffb));
        assert_eq!(s.get(&rec, b), Some(u64::MAX));
        // A field outside the record, or a short record, is None rather than a panic.
        assert_eq!(s.get(&rec[..10], b), None);
        assert_eq!(s.get(&rec, field(4, 4, FieldKind::Unsigned)), None);
        assert_eq!(Span::of(&[]), None);
        assert_eq!(
            Span::of(&[
                field(0, 1, FieldKind::Bool),
                field(1 << 20, 8, FieldKind::Unsigned)
            ]),
            None
        );
        assert_eq!(Span::of(&[field(u32::MAX, 8, FieldKind::Unsigned)]), None);
    }
}
