// syscallheavy reproduces docs/pathologies.md row 5, "syscall heavy": goroutines doing tiny
// syscalls in a loop, a 1-byte write then a 1-byte read on a pipe of their own.
//
// Runtime paths: syscall.Write / syscall.Read on raw blocking file descriptors (not the
// netpoller) -> syscall.Syscall -> runtime.entersyscall, the write(2) / read(2) system call,
// runtime.exitsyscall. The pipe always holds the byte just written, so the read never blocks:
// the time goes to the kernel's syscall entry/exit and pipe code, and to entersyscall /
// exitsyscall. pprof shows syscall.Syscall.
//
// What gocpu must report: syscall class dominant (kernel time inside syscalls).
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// The -goroutines flag as used.
	SyscallGoroutines int `json:"syscall_goroutines"`
	// Completed write(2) plus read(2) calls on the pipes.
	Syscalls uint64 `json:"syscalls"`
	// Syscalls / Seconds.
	SyscallsPerSecond float64 `json:"syscalls_per_second"`
}

// pipeLoop writes and reads back one byte on its own pipe until stop; returns the number of
// completed system calls. Never inlined so that it is visible in profiles.
//
//go:noinline
func pipeLoop(r, w int, stop *atomic.Bool) (uint64, error) {
	var buf [1]byte
	var n uint64
	for !stop.Load() {
		if _, err := syscall.Write(w, buf[:]); err != nil {
			return n, err
		}
		n++
		if _, err := syscall.Read(r, buf[:]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func main() {
	goroutines := flag.Int("goroutines", 2, "goroutines each looping on 1-byte pipe write + read (1-10000)")
	end := truth.Start("syscallheavy: -goroutines must be 1..10000", func() bool {
		return *goroutines < 1 || *goroutines > 10000
	})

	pipes := make([][2]int, 0, *goroutines)
	for i := 0; i < *goroutines; i++ {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			truth.Fail("syscallheavy: pipe2:", err)
		}
		pipes = append(pipes, p)
	}

	var stop atomic.Bool
	var total uint64
	var failed atomic.Bool
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range pipes {
		wg.Add(1)
		go func(r, w int) {
			defer wg.Done()
			n, err := pipeLoop(r, w, &stop)
			if err != nil {
				fmt.Fprintln(os.Stderr, "syscallheavy: pipe I/O:", err)
				failed.Store(true)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}(p[0], p[1])
	}

	g := end.Wait()
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()
	for _, p := range pipes {
		syscall.Close(p[0])
		syscall.Close(p[1])
	}

	r := report{
		Common:            truth.Collect("syscallheavy", seconds, g),
		SyscallGoroutines: *goroutines,
		Syscalls:          total,
		SyscallsPerSecond: float64(total) / seconds,
	}
	truth.Print(r)
	if failed.Load() {
		os.Exit(1)
	}
}
