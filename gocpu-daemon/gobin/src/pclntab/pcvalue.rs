//! PC-value tables: the runtime's `pcvalue`/`step` encoding (zig-zag value deltas and PC
//! deltas in instruction quanta, both as 32-bit varints; a zero value delta after the first
//! pair ends the table).

/// The runtime's `readvarint`: at most 5 bytes into a u32.
fn varint32(p: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for (i, &b) in p.iter().enumerate().take(5) {
        v |= u32::from(b & 0x7f) << (7 * i as u32);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The table's value at `target`, decoding from the function's `entry`; `None` when the table
/// ends (or is malformed) before reaching `target`.
pub(crate) fn lookup(mut p: &[u8], entry: u64, target: u64, quantum: u8) -> Option<i32> {
    let mut pc = entry;
    let mut val: i32 = -1;
    let mut first = true;
    // Each step consumes at least two bytes, so the loop ends with the slice.
    loop {
        let (uv, n) = varint32(p)?;
        if uv == 0 && !first {
            return None;
        }
        first = false;
        p = p.get(n..)?;
        let delta = if uv & 1 != 0 {
            !(uv >> 1) as i32
        } else {
            (uv >> 1) as i32
        };
        val = val.wrapping_add(delta);
        let (pcd, n) = varint32(p)?;
        p = p.get(n..)?;
        pc = pc.checked_add(u64::from(pcd) * u64::from(quantum))?;
        if target < pc {
            return Some(val);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_runtime_encoding() {
        // val -1 -> 10 (delta +11, zigzag 22) for 5 bytes, then -> 7 (delta -3, zigzag 5) for
        // 0x90 bytes (varint 0x90 0x01), then end.
        let t = [22u8, 5, 5, 0x90, 0x01, 0];
        assert_eq!(lookup(&t, 100, 100, 1), Some(10));
        assert_eq!(lookup(&t, 100, 104, 1), Some(10));
        assert_eq!(lookup(&t, 100, 105, 1), Some(7));
        assert_eq!(lookup(&t, 100, 105 + 0x8f, 1), Some(7));
        assert_eq!(lookup(&t, 100, 105 + 0x90, 1), None);
        assert_eq!(lookup(&t, 100, 104, 4), Some(10));
        assert_eq!(lookup(&t, 100, 120, 4), Some(7));
    }

    #[test]
    fn truncated_tables_end_the_lookup() {
        assert_eq!(lookup(&[], 0, 0, 1), None);
        assert_eq!(lookup(&[0x80], 0, 0, 1), None);
        assert_eq!(lookup(&[2, 0x80, 0x80, 0x80, 0x80, 0x80], 0, 0, 1), None);
    }
}
