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
// -signals N instead sends the program N SIGUSR1 per second (caught with signal.Notify), and
// -goroutines 0 makes no cgo call at all: a cgo-linked program installs its signal handlers
// through libc, so each handler returns through libc's __restore_rt (rt_sigreturn), C code that
// is not a cgo call. What gocpu must report then: no cgo at all, runtime.cgocall at 0/s.
//
// -threads N (with -goroutines 0 too) makes the runtime start about N new Ms a second: a
// goroutine that exits locked to its thread takes the thread with it (each holds its thread for
// -thread-ms first, sleeping). A cgo-linked runtime
// starts each M through libc's pthread_create, and the new thread runs libc code before any Go
// code: C that is not a cgo call either. What gocpu must report: no cgo, no native threads.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

// #include "spin.h"
import "C"

import (
	"flag"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
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
	// SIGUSR1 the program sent itself, and those its signal.Notify channel received (the
	// runtime drops a signal while the channel is full).
	SignalsSent     uint64 `json:"signals_sent"`
	SignalsReceived uint64 `json:"signals_received"`
	// Threads retired by exiting locked to them (each one the runtime replaced with a new M).
	ThreadsRetired uint64 `json:"threads_retired"`
}

func main() {
	goroutines := flag.Int("goroutines", 1, "goroutines calling the spinning C function back to back (0-64; 0 needs -signals)")
	callMs := flag.Int("call-ms", 100, "wall-clock length of one C call in milliseconds (1-10000)")
	signals := flag.Int("signals", 0, "SIGUSR1 per second the program sends itself (0-1000000)")
	threads := flag.Int("threads", 0, "threads per second retired by exiting locked to them (0-10000)")
	threadMs := flag.Int("thread-ms", 300, "how long each -threads goroutine holds its thread before it exits, in milliseconds (0-10000)")
	end := truth.Start("cgospin: -goroutines must be 0..64 (0 only with -signals or -threads), -call-ms 1..10000, -signals 0..1000000, -threads 0..10000, -thread-ms 0..10000", func() bool {
		return *goroutines < 0 || *goroutines > 64 || *callMs < 1 || *callMs > 10000 ||
			*signals < 0 || *signals > 1000000 || *threads < 0 || *threads > 10000 || *threadMs < 0 || *threadMs > 10000 ||
			(*goroutines == 0 && *signals == 0 && *threads == 0)
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

	var sent, received atomic.Uint64
	// Closed when the run ends: the receiver's way out (a timer per receive would be the
	// program's main work at these rates).
	done := make(chan struct{})
	if *signals > 0 {
		caught := make(chan os.Signal, 64)
		signal.Notify(caught, syscall.SIGUSR1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-caught:
					received.Add(1)
				case <-done:
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			pid := os.Getpid()
			// Paced per millisecond against the clock, so a late tick sends its backlog.
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for !stop.Load() {
				<-tick.C
				due := uint64(time.Since(start).Seconds() * float64(*signals))
				for sent.Load() < due && !stop.Load() {
					if syscall.Kill(pid, syscall.SIGUSR1) != nil {
						truth.Fail("cgospin: cannot signal itself")
					}
					sent.Add(1)
				}
			}
		}()
	}

	var retired atomic.Uint64
	if *threads > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var started uint64
			for !stop.Load() {
				<-tick.C
				due := uint64(time.Since(start).Seconds() * float64(*threads))
				for ; started < due && !stop.Load(); started++ {
					go func() {
						runtime.LockOSThread()
						time.Sleep(time.Duration(*threadMs) * time.Millisecond)
						retired.Add(1)
					}()
				}
			}
		}()
	}

	g := end.Wait()
	seconds := time.Since(start).Seconds()
	stop.Store(true)
	close(done)
	wg.Wait() // at most one call-ms

	r := report{
		Common:          truth.Collect("cgospin", seconds, g),
		CCalls:          calls.Load(),
		CCallsPerSecond: float64(calls.Load()) / seconds,
		CSeconds:        time.Duration(cNanos.Load()).Seconds(),
		CIterations:     iters.Load(),
		SpinGoroutines:  *goroutines,
		CallMs:          *callMs,
		SignalsSent:     sent.Load(),
		SignalsReceived: received.Load(),
		ThreadsRetired:  retired.Load(),
	}
	truth.Print(r)
}
