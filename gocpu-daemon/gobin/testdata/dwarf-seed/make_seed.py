#!/usr/bin/env python3
"""Writes a small synthetic Go-runtime DWARF as a seed for the `dwarf_offsets` fuzz target.

The real thing is ~1 MB per binary; this is ~2 KB with the same shape (runtime.g, m, p, schedt,
[]*runtime.g, typedefs, atomic wrappers, pointers, a counter array) laid out like Go 1.25, plus the forms Go
itself never uses but other producers do (strp names, exprloc member locations, unit-relative
ref4 type references), so the fuzzer and `tests/dwarf_synthetic.rs` reach those paths too.

Input format (what fuzz_targets/dwarf_offsets.rs reads): a flags byte, then either a whole ELF
(flag 1) or three u32 LE lengths (.debug_info, .debug_abbrev, .debug_str), those sections and
then .debug_line_str, with .debug_info stored plain, SHF_COMPRESSED (flag 2) or GNU .zdebug
(flag 4). One seed per form is written to OUTDIR.

Usage: make_seed.py OUTDIR
"""
import os
import struct
import sys
import zlib

# DWARF constants.
TAG_CU, TAG_STRUCT, TAG_MEMBER, TAG_BASE, TAG_TYPEDEF, TAG_PTR = 0x11, 0x13, 0x0D, 0x24, 0x16, 0x0F
TAG_ARRAY = 0x01
AT_NAME, AT_BYTE_SIZE, AT_LOC, AT_TYPE, AT_ENCODING = 0x03, 0x0B, 0x38, 0x49, 0x3E
FORM_STRING, FORM_UDATA, FORM_REF_ADDR, FORM_DATA1 = 0x08, 0x0F, 0x10, 0x0B
FORM_STRP, FORM_EXPRLOC, FORM_REF4 = 0x0E, 0x18, 0x13
ATE_BOOL, ATE_SIGNED, ATE_UNSIGNED = 0x02, 0x05, 0x07
OP_PLUS_UCONST = 0x23


def uleb(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


ABBREVS = {
    1: (TAG_CU, True, [(AT_NAME, FORM_STRING)]),
    2: (TAG_STRUCT, True, [(AT_NAME, FORM_STRING), (AT_BYTE_SIZE, FORM_UDATA)]),
    3: (TAG_MEMBER, False, [(AT_NAME, FORM_STRING), (AT_LOC, FORM_UDATA), (AT_TYPE, FORM_REF_ADDR)]),
    4: (TAG_BASE, False, [(AT_NAME, FORM_STRING), (AT_ENCODING, FORM_DATA1), (AT_BYTE_SIZE, FORM_UDATA)]),
    5: (TAG_TYPEDEF, False, [(AT_NAME, FORM_STRING), (AT_TYPE, FORM_REF_ADDR)]),
    6: (TAG_PTR, False, [(AT_NAME, FORM_STRING), (AT_TYPE, FORM_REF_ADDR)]),
    7: (TAG_MEMBER, False, [(AT_NAME, FORM_STRP), (AT_LOC, FORM_EXPRLOC), (AT_TYPE, FORM_REF4)]),
    8: (TAG_STRUCT, True, [(AT_NAME, FORM_STRP), (AT_BYTE_SIZE, FORM_UDATA)]),
    9: (TAG_ARRAY, False, [(AT_NAME, FORM_STRING), (AT_BYTE_SIZE, FORM_UDATA), (AT_TYPE, FORM_REF_ADDR)]),
}


def abbrev_section():
    out = bytearray()
    for code, (tag, children, attrs) in ABBREVS.items():
        out += uleb(code) + uleb(tag) + bytes([1 if children else 0])
        for at, form in attrs:
            out += uleb(at) + uleb(form)
        out += b"\0\0"
    return bytes(out + b"\0")


class Builder:
    """DIEs with symbolic type references, laid out in two passes."""

    def __init__(self):
        self.dies = []  # (label, code, values, children_end)
        self.strs = bytearray()

    def strp(self, s):
        off = len(self.strs)
        self.strs += s.encode() + b"\0"
        return off

    def die(self, code, label=None, *values):
        self.dies.append((label, code, list(values)))

    def end(self):
        self.dies.append((None, 0, []))

    def encode(self, offsets, unit_start):
        out = bytearray()
        for label, code, values in self.dies:
            if label is not None:
                offsets[label] = unit_start + 11 + len(out)
            out += uleb(code)
            if code == 0:
                continue
            for (at, form), v in zip(ABBREVS[code][2], values):
                if form == FORM_STRING:
                    out += v.encode() + b"\0"
                elif form == FORM_UDATA:
                    out += uleb(v)
                elif form == FORM_DATA1:
                    out += bytes([v])
                elif form == FORM_STRP:
                    out += struct.pack("<I", self.strp_offsets[v])
                elif form == FORM_EXPRLOC:
                    expr = bytes([OP_PLUS_UCONST]) + uleb(v)
                    out += uleb(len(expr)) + expr
                elif form == FORM_REF_ADDR:
                    out += struct.pack("<I", offsets.get(v, 0))
                elif form == FORM_REF4:
                    out += struct.pack("<I", offsets.get(v, unit_start) - unit_start)
        return bytes(out)


def build():
    b = Builder()
    names = ["runtime.p", "id", "status", "m", "runqhead", "runqtail", "runnext", "size"]
    b.strp_offsets = {n: b.strp(n) for n in names}
    b.die(1, None, "runtime")
    for label, enc, size in [("uint8", ATE_UNSIGNED, 1), ("uint32", ATE_UNSIGNED, 4),
                             ("int32", ATE_SIGNED, 4), ("int64", ATE_SIGNED, 8),
                             ("uint64", ATE_UNSIGNED, 8), ("uintptr", ATE_UNSIGNED, 8),
                             ("int", ATE_SIGNED, 8), ("bool", ATE_BOOL, 1)]:
        b.die(4, label, label, enc, size)
    for name, target in [("runtime.guintptr", "uintptr"), ("runtime.puintptr", "uintptr"),
                         ("runtime.muintptr", "uintptr"), ("runtime.waitReason", "uint8")]:
        b.die(5, name, name, target)
    b.die(2, "noCopy", "internal/runtime/atomic.noCopy", 0)
    b.end()
    for name, inner, size in [("internal/runtime/atomic.Int32", "int32", 4),
                              ("internal/runtime/atomic.Uint32", "uint32", 4),
                              ("internal/runtime/atomic.Uint64", "uint64", 8)]:
        b.die(2, name, name, size)
        b.die(3, None, "noCopy", 0, "noCopy")
        b.die(3, None, "value", 0, inner)
        b.end()
    for name, target in [("*runtime.g", "runtime.g"), ("*runtime.m", "runtime.m"),
                         ("**runtime.g", "*runtime.g")]:
        b.die(6, name, name, target)

    def struct_die(name, size, members):
        b.die(2, name, name, size)
        for mname, off, ty in members:
            b.die(3, None, mname, off, ty)
        b.end()

    struct_die("runtime.stack", 16, [("lo", 0, "uintptr"), ("hi", 8, "uintptr")])
    struct_die("runtime.gobuf", 56, [("sp", 0, "uintptr"), ("pc", 8, "uintptr"),
                                 ("g", 16, "runtime.guintptr"), ("bp", 40, "uintptr")])
    struct_die("runtime.g", 440, [
        ("stack", 0, "runtime.stack"), ("m", 48, "*runtime.m"), ("sched", 56, "runtime.gobuf"),
        ("atomicstatus", 144, "internal/runtime/atomic.Uint32"), ("goid", 152, "uint64"),
        ("waitsince", 168, "int64"), ("waitreason", 176, "runtime.waitReason"),
        ("gopc", 280, "uintptr"), ("startpc", 296, "uintptr")])
    struct_die("runtime.m", 1816, [
        ("g0", 0, "*runtime.g"), ("procid", 64, "uint64"), ("curg", 184, "*runtime.g"),
        ("p", 200, "runtime.puintptr"), ("id", 224, "int64"), ("spinning", 268, "bool"),
        ("blocked", 269, "bool"), ("incgo", 272, "bool"), ("ncgocall", 312, "uint64"),
        ("alllink", 344, "*runtime.m")])
    # runtime.p and gQueue use strp names, exprloc locations and unit-relative references.
    b.die(8, "runtime.p", "runtime.p", 9512)
    for mname, off, ty in [("id", 0, "int32"), ("status", 4, "uint32"),
                           ("m", 48, "runtime.muintptr"), ("runqhead", 392, "uint32"),
                           ("runqtail", 396, "uint32"), ("runnext", 2448, "runtime.guintptr")]:
        b.die(7, None, mname, off, ty)
    b.end()
    b.die(2, "runtime.gQueue", "runtime.gQueue", 24)
    b.die(3, None, "head", 0, "runtime.guintptr")
    b.die(3, None, "tail", 8, "runtime.guintptr")
    b.die(7, None, "size", 16, "int32")
    b.end()
    # The scheduling-latency histogram: an array of atomic counters, then two more counters.
    b.die(9, "[160]internal/runtime/atomic.Uint64", "[160]internal/runtime/atomic.Uint64", 1280,
          "internal/runtime/atomic.Uint64")
    struct_die("runtime.timeHistogram", 1296, [
        ("counts", 0, "[160]internal/runtime/atomic.Uint64"),
        ("underflow", 1280, "internal/runtime/atomic.Uint64"),
        ("overflow", 1288, "internal/runtime/atomic.Uint64")])
    struct_die("runtime.schedt", 6856, [
        ("goidgen", 0, "internal/runtime/atomic.Uint64"), ("nmidle", 48, "int32"),
        ("mnext", 56, "int64"), ("nmsys", 68, "int32"), ("nmfreed", 72, "int64"),
        ("npidle", 96, "internal/runtime/atomic.Int32"),
        ("nmspinning", 100, "internal/runtime/atomic.Int32"), ("runq", 112, "runtime.gQueue"),
        ("timeToRun", 344, "runtime.timeHistogram")])
    struct_die("[]*runtime.g", 24, [("array", 0, "**runtime.g"), ("len", 8, "int"), ("cap", 16, "int")])
    b.end()  # compile unit

    offsets = {}
    body = b.encode(offsets, 0)  # first pass: labels
    body = b.encode(offsets, 0)  # second pass: resolved references
    header = struct.pack("<IHIB", 7 + len(body), 4, 0, 8)
    return header + body, abbrev_section(), bytes(b.strs)


def sections_seed(flags, info, abbrev, strs):
    data = bytes([flags]) + struct.pack("<III", len(info), len(abbrev), len(strs))
    return data + info + abbrev + strs


def chdr_zlib(data):
    """An SHF_COMPRESSED payload: Elf64_Chdr (ELFCOMPRESS_ZLIB) and a zlib stream."""
    return struct.pack("<IIQQ", 1, 0, len(data), 1) + zlib.compress(data)


def elf(sections):
    """A minimal ELF64 relocatable object holding `sections` [(name, bytes, sh_flags)]."""
    shstrtab = bytearray(b"\0")
    names = []
    for name, _, _ in sections + [(".shstrtab", b"", 0)]:
        names.append(len(shstrtab))
        shstrtab += name.encode() + b"\0"
    body = bytearray()
    placed = []
    for (_, data, _), _ in zip(sections, names):
        placed.append((64 + len(body), len(data)))
        body += data
    placed.append((64 + len(body), len(shstrtab)))
    body += shstrtab
    body += bytes(-len(body) % 8)  # section headers are 8-byte aligned
    shoff = 64 + len(body)
    shnum = len(sections) + 2
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, shnum,
                          shnum - 1)
    shdrs = bytes(64)
    for i, (name, data, flags) in enumerate(sections + [(".shstrtab", b"", 0)]):
        off, size = placed[i]
        kind = 3 if name == ".shstrtab" else 1
        shdrs += struct.pack("<IIQQQQIIQQ", names[i], kind, flags, 0, off, size, 0, 0, 1, 0)
    return header + bytes(body) + shdrs


SHF_COMPRESSED = 0x800


def main():
    out = sys.argv[1]
    info, abbrev, strs = build()
    seeds = {
        "synthetic-go1.25-layout": sections_seed(0, info, abbrev, strs),
        "synthetic-shf-compressed": sections_seed(2, chdr_zlib(info), abbrev, strs),
        "synthetic-zdebug": sections_seed(
            4, b"ZLIB" + struct.pack(">Q", len(info)) + zlib.compress(info), abbrev, strs),
        "synthetic-elf": bytes([1]) + elf([(".debug_info", chdr_zlib(info), SHF_COMPRESSED),
                                           (".debug_abbrev", abbrev, 0),
                                           (".debug_str", strs, 0)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
