// nativespin reproduces PATHOLOGIES.md row 2, "native thread spin": C code starts pthreads that
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
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strings"
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
	// The -threads flag as used.
	NativeThreads int `json:"native_threads"`
	// Linux thread ids of the spinning threads (none of them is an M).
	NativeTids []int `json:"native_tids"`
	// Loop iterations the spinners ran in total (proof that they ran).
	NativeIterations uint64 `json:"native_iterations"`
}

func main() {
	threads := flag.Int("threads", 1, "native pthreads spinning outside the Go runtime (1-64)")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *threads < 1 || *threads > C.GOCPU_NATIVE_MAX {
		fmt.Fprintln(os.Stderr, "nativespin: -threads must be 1..64")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	start := time.Now()
	if errno := C.gocpu_native_start(C.int(*threads)); errno != 0 {
		fmt.Fprintln(os.Stderr, "nativespin: pthread_create:", syscall.Errno(errno))
		os.Exit(1)
	}
	tids := make([]int, 0, *threads)
	for i := 0; i < *threads; i++ {
		tids = append(tids, int(C.gocpu_native_tid(C.int(i))))
	}

	select {
	case <-sig:
	case <-timeout:
	}
	seconds := time.Since(start).Seconds()
	g := runtime.NumGoroutine()
	iters := uint64(C.gocpu_native_stop())

	r := report{
		Workload:         "nativespin",
		GoVersion:        runtime.Version(),
		Seconds:          seconds,
		GOMAXPROCS:       runtime.GOMAXPROCS(0),
		Goroutines:       g,
		CgoCalls:         runtime.NumCgoCall(),
		CPUClasses:       cpuClasses(),
		NativeThreads:    *threads,
		NativeTids:       tids,
		NativeIterations: iters,
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
