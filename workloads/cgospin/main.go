// cgospin reproduces docs/pathologies.md row 1, "cgo spin": a few goroutines call a C function that
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
	"flag"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
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
	end := truth.Start("cgospin: -goroutines must be 1..64 and -call-ms 1..10000", func() bool {
		return *goroutines < 1 || *goroutines > 64 || *callMs < 1 || *callMs > 10000
	})

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

	g := end.Wait()
	seconds := time.Since(start).Seconds()
	stop.Store(true)
	wg.Wait() // at most one call-ms

	r := report{
		Common:          truth.Collect("cgospin", seconds, g),
		CCalls:          calls.Load(),
		CCallsPerSecond: float64(calls.Load()) / seconds,
		CSeconds:        time.Duration(cNanos.Load()).Seconds(),
		CIterations:     iters.Load(),
		SpinGoroutines:  *goroutines,
		CallMs:          *callMs,
	}
	truth.Print(r)
}
