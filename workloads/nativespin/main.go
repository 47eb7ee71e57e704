// nativespin reproduces docs/pathologies.md row 2, "native thread spin": C code starts pthreads that
// spin outside any cgocall, while the Go side sleeps.
//
// Runtime paths: one cgocall starts the threads (runtime.cgocall -> asmcgocall ->
// gocpu_native_start -> pthread_create); after that the spinners (function gocpu_native_spin,
// thread name "gocpu-nspin") run no Go code and are not Ms: no g, no P, no runtime accounting.
// The Go side only parks in the netpoller / futexsleep until the stop signal.
// pprof and runtime/metrics show nothing at all (cpu_classes stay idle) while getrusage and
// /proc show about -threads cores busy; runtime.NumCgoCall() stays tiny.
//
// What gocpu must report: CPU on a thread that is not an M (the tids in native_tids);
// attributed to native/non-Go; flagged.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

// #include "native.h"
import "C"

import (
	"flag"
	"syscall"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// The -threads flag as used.
	NativeThreads int `json:"native_threads"`
	// Linux thread ids of the spinning threads (none of them is an M).
	NativeTids []int `json:"native_tids"`
	// Loop iterations the spinners ran in total (proof that they ran).
	NativeIterations uint64 `json:"native_iterations"`
}

func main() {
	threads := flag.Int("threads", 1, "native pthreads spinning outside the Go runtime (1-64)")
	end := truth.Start("nativespin: -threads must be 1..64", func() bool {
		return *threads < 1 || *threads > C.GOCPU_NATIVE_MAX
	})

	start := time.Now()
	if errno := C.gocpu_native_start(C.int(*threads)); errno != 0 {
		truth.Fail("nativespin: pthread_create:", syscall.Errno(errno))
	}
	tids := make([]int, 0, *threads)
	for i := 0; i < *threads; i++ {
		tids = append(tids, int(C.gocpu_native_tid(C.int(i))))
	}

	g := end.Wait()
	seconds := time.Since(start).Seconds()
	iters := uint64(C.gocpu_native_stop())

	r := report{
		Common:           truth.Collect("nativespin", seconds, g),
		NativeThreads:    *threads,
		NativeTids:       tids,
		NativeIterations: iters,
	}
	truth.Print(r)
}
