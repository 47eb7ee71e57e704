// Command gobinoracle answers questions about Go binaries with Go's own standard library
// (debug/gosym, debug/dwarf), as an independent oracle for gocpu-gobin's tests.
//
//	gobinoracle gosym <raw-pclntab> <textstart-hex> <pc-hex>...
//	    functions of a raw .gopclntab ("F entry end name"), then "L pc file line func" per PC
//	gobinoracle inline <elf> <pc-hex>...
//	    per PC, from DWARF: "I<tab>pc<tab>name|name|...<tab>file:line|file:line|..." with the inline chain
//	    innermost first (the last name is the real function) and the call site of each
//	    inlined call in its caller
package main

import (
	"bufio"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: gobinoracle gosym|inline <file> args...")
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch os.Args[1] {
	case "gosym":
		gosymCmd(out, os.Args[2], os.Args[3], os.Args[4:])
	case "inline":
		inlineCmd(out, os.Args[2], os.Args[3:])
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}

func hex(s string) uint64 {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		fail("bad hex " + s)
	}
	return v
}

func gosymCmd(out *bufio.Writer, path, textStart string, pcs []string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err.Error())
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, hex(textStart)))
	if err != nil {
		fail(err.Error())
	}
	for _, f := range tab.Funcs {
		fmt.Fprintf(out, "F %x %x %s\n", f.Entry, f.End, f.Name)
	}
	for _, p := range pcs {
		pc := hex(p)
		file, line, fn := tab.PCToLine(pc)
		name := "?"
		if fn != nil {
			name = fn.Name
		}
		fmt.Fprintf(out, "L %x %s %d %s\n", pc, file, line, name)
	}
}

type inl struct {
	name     string
	callFile string
	callLine int64
}

func inlineCmd(out *bufio.Writer, path string, pcs []string) {
	f, err := elf.Open(path)
	if err != nil {
		fail(err.Error())
	}
	d, err := f.DWARF()
	if err != nil {
		fail(err.Error())
	}
	names := abstractNames(d)
	for _, p := range pcs {
		pc := hex(p)
		chain, outer, ok := chainAt(d, names, pc)
		if !ok {
			fmt.Fprintf(out, "I\t%x\t?\n", pc)
			continue
		}
		var ns, sites []string
		for i := len(chain) - 1; i >= 0; i-- {
			ns = append(ns, chain[i].name)
			sites = append(sites, fmt.Sprintf("%s:%d", chain[i].callFile, chain[i].callLine))
		}
		ns = append(ns, outer)
		fmt.Fprintf(out, "I\t%x\t%s\t%s\n", pc, strings.Join(ns, "|"), strings.Join(sites, "|"))
	}
}

// abstractNames maps the offset of every subprogram with a name to that name, for
// DW_AT_abstract_origin references.
func abstractNames(d *dwarf.Data) map[dwarf.Offset]string {
	m := map[dwarf.Offset]string{}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			return m
		}
		if e.Tag == dwarf.TagSubprogram {
			if n, ok := e.Val(dwarf.AttrName).(string); ok {
				m[e.Offset] = n
			}
		}
	}
}

func contains(d *dwarf.Data, e *dwarf.Entry, pc uint64) bool {
	rs, err := d.Ranges(e)
	if err != nil {
		return false
	}
	for _, r := range rs {
		if pc >= r[0] && pc < r[1] {
			return true
		}
	}
	return false
}

// chainAt finds the concrete subprogram holding pc and the inlined subroutines nested in it
// that hold pc, outermost first.
func chainAt(d *dwarf.Data, names map[dwarf.Offset]string, pc uint64) ([]inl, string, bool) {
	r := d.Reader()
	cu, err := r.SeekPC(pc)
	if err != nil {
		return nil, "", false
	}
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		return nil, "", false
	}
	files := lr.Files()
	for {
		e, err := r.Next()
		if err != nil || e == nil || e.Tag == 0 && e.Offset == 0 {
			return nil, "", false
		}
		if e.Tag == dwarf.TagCompileUnit {
			return nil, "", false
		}
		if e.Tag != dwarf.TagSubprogram || !contains(d, e, pc) {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		outer, _ := e.Val(dwarf.AttrName).(string)
		if outer == "" {
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				outer = names[o]
			}
		}
		var chain []inl
		if e.Children {
			chain = descend(d, r, names, files, pc)
		}
		return chain, outer, true
	}
}

// descend walks the children of the current entry, following inlined subroutines that hold pc.
func descend(d *dwarf.Data, r *dwarf.Reader, names map[dwarf.Offset]string, files []*dwarf.LineFile, pc uint64) []inl {
	var chain []inl
	for {
		e, err := r.Next()
		if err != nil || e == nil || e.Tag == 0 {
			return chain
		}
		if e.Tag == dwarf.TagInlinedSubroutine && contains(d, e, pc) {
			name := ""
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				name = names[o]
			}
			file := "?"
			if idx, ok := e.Val(dwarf.AttrCallFile).(int64); ok && idx >= 0 && int(idx) < len(files) && files[idx] != nil {
				file = files[idx].Name
			}
			line, _ := e.Val(dwarf.AttrCallLine).(int64)
			chain = append(chain, inl{name, file, line})
			if e.Children {
				return append(chain, descend(d, r, names, files, pc)...)
			}
			return chain
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}
