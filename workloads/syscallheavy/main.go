// syscallheavy reproduces PATHOLOGIES.md row 5, "syscall heavy": goroutines doing tiny
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
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type report struct {
	Workload         string             `json:"workload"`
	GoVersion        string             `json:"go_version"`
	Seconds          float64            `json:"seconds"`
	GOMAXPROCS       int                `json:"gomaxprocs"`
	Goroutines       int                `json:"goroutines"`
	CgoCalls         int64              `json:"cgo_calls"`
	CPUClasses       map[string]float64 `json:"cpu_classes"`
	CPUUserSeconds   float64            `json:"cpu_user_seconds"`
	CPUSystemSeconds float64            `json:"cpu_system_seconds"`
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
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *goroutines < 1 || *goroutines > 10000 {
		fmt.Fprintln(os.Stderr, "syscallheavy: -goroutines must be 1..10000")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	pipes := make([][2]int, 0, *goroutines)
	for i := 0; i < *goroutines; i++ {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			fmt.Fprintln(os.Stderr, "syscallheavy: pipe2:", err)
			os.Exit(1)
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

	select {
	case <-sig:
	case <-timeout:
	}
	g := runtime.NumGoroutine() // before stop: the workers are all still there
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()
	for _, p := range pipes {
		syscall.Close(p[0])
		syscall.Close(p[1])
	}

	r := report{
		Workload:          "syscallheavy",
		GoVersion:         runtime.Version(),
		Seconds:           seconds,
		GOMAXPROCS:        runtime.GOMAXPROCS(0),
		Goroutines:        g,
		CgoCalls:          runtime.NumCgoCall(),
		CPUClasses:        cpuClasses(),
		SyscallGoroutines: *goroutines,
		Syscalls:          total,
		SyscallsPerSecond: float64(total) / seconds,
	}
	r.CPUUserSeconds, r.CPUSystemSeconds = cpuTimes()
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
	if failed.Load() {
		os.Exit(1)
	}
}

// stopSignal installs the SIGTERM/SIGINT handler, before any work starts so that an early
// signal still ends in a report, and returns the channels whose first event ends the run
// (timeout is nil, never ready, when d is 0). The caller selects on them itself: a helper
// goroutine would make the reported goroutine count racy.
func stopSignal(d time.Duration) (<-chan os.Signal, <-chan time.Time) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var timeout <-chan time.Time
	if d > 0 {
		timeout = time.After(d)
	}
	return sig, timeout
}

// cpuClasses reads runtime/metrics /cpu/classes/* (Go >= 1.20; an empty map before, where
// metrics.Read on an empty slice would panic). The runtime only brings these estimates up to
// date at the end of a GC cycle, so this forces one first: the values then cover the whole run
// (the forced cycle itself adds a few milliseconds of GC CPU).
func cpuClasses() map[string]float64 {
	out := map[string]float64{}
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/cpu/classes/") {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	if len(samples) == 0 {
		return out
	}
	runtime.GC()
	metrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindFloat64 {
			out[s.Name] = s.Value.Float64()
		}
	}
	return out
}

// cpuTimes is the process's user and system CPU seconds so far (getrusage, all threads,
// including threads the Go runtime does not know about).
func cpuTimes() (user, system float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()
}
