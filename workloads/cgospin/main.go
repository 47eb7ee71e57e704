// cgospin reproduces PATHOLOGIES.md row 1, "cgo spin": a few goroutines call a C function that
// busy-loops, long calls back to back.
//
// Runtime paths: runtime.cgocall -> entersyscall, m.incgo = true, asmcgocall (switch to g0
// stack) -> the C function gocpu_cgo_spin -> exitsyscall. While a goroutine sits in C its P is
// in _Psyscall and sysmon retakes it (handoffp), so the Go runtime counts those Ps as idle:
// runtime/metrics /cpu/classes show little or no user CPU while the process burns about
// -goroutines cores. pprof shows little or nothing Go; the goroutine count stays at a few.
//
// What gocpu must report: CPU ~ cores used; cgo class dominant; cgo calls/s (about
// goroutines * 1000 / call-ms); pseudo-idle flagged.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

// #include "spin.h"
import "C"

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
	// Completed calls of the spinning C function (all goroutines).
	CCalls uint64 `json:"c_calls"`
	// CCalls per second of Seconds.
	CCallsPerSecond float64 `json:"c_calls_per_second"`
	// Wall time spent inside the C function, summed over goroutines.
	CSeconds float64 `json:"c_seconds"`
	// Loop iterations the C function reported (proof that it ran, not slept).
	CIterations uint64 `json:"c_iterations"`
	// The -goroutines and -call-ms flags as used.
	SpinGoroutines int `json:"spin_goroutines"`
	CallMs         int `json:"call_ms"`
}

func main() {
	goroutines := flag.Int("goroutines", 1, "goroutines calling the spinning C function back to back (1-64)")
	callMs := flag.Int("call-ms", 100, "wall-clock length of one C call in milliseconds (1-10000)")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *goroutines < 1 || *goroutines > 64 || *callMs < 1 || *callMs > 10000 {
		fmt.Fprintln(os.Stderr, "cgospin: -goroutines must be 1..64 and -call-ms 1..10000")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	start := time.Now()
	var stop atomic.Bool
	var calls, iters, cNanos atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Now()
				n := uint64(C.gocpu_cgo_spin(C.int(*callMs)))
				cNanos.Add(uint64(time.Since(t0)))
				iters.Add(n)
				calls.Add(1)
			}
		}()
	}

	select {
	case <-sig:
	case <-timeout:
	}
	seconds := time.Since(start).Seconds()
	g := runtime.NumGoroutine()
	stop.Store(true)
	wg.Wait() // at most one call-ms

	r := report{
		Workload:        "cgospin",
		GoVersion:       runtime.Version(),
		Seconds:         seconds,
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		Goroutines:      g,
		CgoCalls:        runtime.NumCgoCall(),
		CPUClasses:      cpuClasses(),
		CCalls:          calls.Load(),
		CCallsPerSecond: float64(calls.Load()) / seconds,
		CSeconds:        time.Duration(cNanos.Load()).Seconds(),
		CIterations:     iters.Load(),
		SpinGoroutines:  *goroutines,
		CallMs:          *callMs,
	}
	r.CPUUserSeconds, r.CPUSystemSeconds = cpuTimes()
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
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
