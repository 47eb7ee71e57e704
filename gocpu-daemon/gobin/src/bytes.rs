//! Bounds-checked integer reads from untrusted byte slices.
//!
//! Every accessor returns `None` when the value would extend past the slice, so parsers turn a
//! hostile offset into an error instead of a panic.

/// Byte order of a binary's integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first (x86-64, arm64, ...).
    Little,
    /// Most significant byte first (s390x, ppc64, ...).
    Big,
}

/// A byte slice with a byte order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Data<'a> {
    pub bytes: &'a [u8],
    pub endian: Endian,
}

impl<'a> Data<'a> {
    pub fn new(bytes: &'a [u8], endian: Endian) -> Self {
        Data { bytes, endian }
    }

    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        self.bytes.get(off..end)?.try_into().ok()
    }

    pub fn u8(&self, off: usize) -> Option<u8> {
        self.bytes.get(off).copied()
    }

    pub fn u16(&self, off: usize) -> Option<u16> {
        let a = self.array::<2>(off)?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    pub fn u32(&self, off: usize) -> Option<u32> {
        let a = self.array::<4>(off)?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    pub fn u64(&self, off: usize) -> Option<u64> {
        let a = self.array::<8>(off)?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }

    /// A pointer-sized word (4 or 8 bytes), widened to u64.
    pub fn word(&self, off: usize, ptr_size: u8) -> Option<u64> {
        match ptr_size {
            4 => self.u32(off).map(u64::from),
            8 => self.u64(off),
            _ => None,
        }
    }

    /// `len` bytes at `off`.
    pub fn slice(&self, off: usize, len: usize) -> Option<&'a [u8]> {
        self.bytes.get(off..off.checked_add(len)?)
    }

    /// The bytes from `off` up to (not including) the next NUL, at most `max` bytes.
    pub fn cstr(&self, off: usize, max: usize) -> Option<&'a [u8]> {
        let rest = self.bytes.get(off..)?;
        let window = rest.get(..max.min(rest.len()))?;
        let n = window.iter().position(|&b| b == 0)?;
        window.get(..n)
    }
}

/// Reads an unsigned LEB128 varint (as Go's `encoding/binary.Uvarint` and the runtime's
/// `readvarint`), returning the value and the number of bytes used; `None` when it is
/// truncated or longer than 64 bits.
pub(crate) fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        if i == 9 && b > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Converts a u64 from the binary into a usize index, `None` when it cannot be one.
pub(crate) fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}
