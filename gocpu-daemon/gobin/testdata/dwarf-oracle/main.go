// Command dwarf-oracle prints struct member layouts read with Go's own debug/elf and
// debug/dwarf: the oracle gocpu-gobin's DWARF reader is tested against.
//
// Usage: dwarf-oracle BINARY TYPE:PATH[|PATH...]...
//
// For each spec it prints one line "TYPE PATH OFFSET SIZE KIND" for the first path that exists
// (a dot in PATH descends into a nested struct), or "TYPE - missing". KIND is Signed, Unsigned,
// Bool or Pointer, looking through typedefs and structs with a single non-empty field (the
// runtime's atomic wrappers); anything else prints "Other".
package main

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: dwarf-oracle BINARY TYPE:PATH[|PATH...]...")
		os.Exit(2)
	}
	f, err := elf.Open(os.Args[1])
	check(err)
	d, err := f.DWARF()
	check(err)
	wanted := map[string]*dwarf.StructType{}
	for _, spec := range os.Args[2:] {
		name, _, _ := strings.Cut(spec, ":")
		wanted[name] = nil
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		check(err)
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if st, ok := wanted[name]; !ok || st != nil {
			continue
		}
		t, err := d.Type(e.Offset)
		check(err)
		if st, ok := t.(*dwarf.StructType); ok {
			wanted[name] = st
		}
	}
	for _, spec := range os.Args[2:] {
		name, paths, _ := strings.Cut(spec, ":")
		st := wanted[name]
		found := false
		for _, path := range strings.Split(paths, "|") {
			if st == nil {
				break
			}
			off, t, ok := lookup(st, path)
			if ok {
				fmt.Printf("%s %s %d %d %s\n", name, path, off, size(t), kind(t))
				found = true
				break
			}
		}
		if !found {
			fmt.Printf("%s - missing\n", name)
		}
	}
}

func lookup(st *dwarf.StructType, path string) (int64, dwarf.Type, bool) {
	var off int64
	parts := strings.Split(path, ".")
	for i, p := range parts {
		var field *dwarf.StructField
		for _, fl := range st.Field {
			if fl.Name == p {
				field = fl
				break
			}
		}
		if field == nil {
			return 0, nil, false
		}
		off += field.ByteOffset
		if i == len(parts)-1 {
			return off, field.Type, true
		}
		inner, ok := strip(field.Type).(*dwarf.StructType)
		if !ok {
			return 0, nil, false
		}
		st = inner
	}
	return 0, nil, false
}

func strip(t dwarf.Type) dwarf.Type {
	for {
		td, ok := t.(*dwarf.TypedefType)
		if !ok {
			return t
		}
		t = td.Type
	}
}

func size(t dwarf.Type) int64 {
	if _, ok := strip(t).(*dwarf.PtrType); ok && t.Size() <= 0 {
		return 8
	}
	return t.Size()
}

func kind(t dwarf.Type) string {
	switch t := strip(t).(type) {
	case *dwarf.IntType, *dwarf.CharType:
		return "Signed"
	case *dwarf.UintType, *dwarf.UcharType:
		return "Unsigned"
	case *dwarf.BoolType:
		return "Bool"
	case *dwarf.PtrType:
		return "Pointer"
	case *dwarf.ArrayType:
		if t.Type.Size() == 8 && kind(t.Type) == "Unsigned" && t.Size() > 0 {
			return "Counters"
		}
		return "Other"
	case *dwarf.StructType:
		var only dwarf.Type
		for _, f := range t.Field {
			if f.Type.Size() == 0 {
				continue
			}
			if only != nil {
				return "Other"
			}
			only = f.Type
		}
		if only == nil {
			return "Other"
		}
		return kind(only)
	}
	return "Other"
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "dwarf-oracle:", err)
		os.Exit(1)
	}
}
