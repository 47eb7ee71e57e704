// goroutineleak reproduces PATHOLOGIES.md row 7, "goroutine leak": goroutines that block
// forever on a channel receive, their count growing steadily (-rate per second), CPU low.
//
// Runtime paths: each leaked goroutine (function main.leakedWorker) runs chanrecv on a channel
// nobody sends on -> gopark (waitReasonChanReceive, "chan receive") -> mcall(park_m) and stays
// parked; newproc / newproc1 / gfget create them. The spawner wakes 10 times a second on a
// ticker (timer, netpoll / futexsleep in between). A CPU profile shows nothing.
//
// What gocpu must report: goroutine count rising (about -rate per second), by wait reason
// ("chan receive"); leak flagged.
//
// Prints one JSON line of ground truth at exit (fields: see report). At exit the channel is
// closed so that every leaked goroutine returns before the report is printed.
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
	// The -rate and -max flags as used.
	Rate int `json:"rate"`
	Max  int `json:"max"`
	// Goroutines started that were blocked on "chan receive" at the end.
	LeakedGoroutines int `json:"leaked_goroutines"`
	// LeakedGoroutines / Seconds.
	LeakedPerSecond float64 `json:"leaked_per_second"`
}

// leakedWorker blocks on a receive from never until it is closed at exit. Never inlined so
// that it is visible in goroutine dumps.
//
//go:noinline
func leakedWorker(wg *sync.WaitGroup, never <-chan struct{}) {
	defer wg.Done()
	<-never
}

func main() {
	rate := flag.Int("rate", 100, "goroutines leaked per second (1-100000)")
	maxLeak := flag.Int("max", 100000, "stop leaking after this many goroutines (1-10000000)")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *rate < 1 || *rate > 100000 || *maxLeak < 1 || *maxLeak > 10000000 {
		fmt.Fprintln(os.Stderr, "goroutineleak: -rate 1..100000, -max 1..10000000")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	never := make(chan struct{})
	var wg sync.WaitGroup
	leaked := 0
	start := time.Now()
	// Spawn on a 100 ms tick up to rate * elapsed, so the count grows in small steady steps
	// and the rate holds even if a tick comes late.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-timeout:
			break loop
		case <-tick.C:
			target := int(time.Since(start).Seconds() * float64(*rate))
			if target > *maxLeak {
				target = *maxLeak
			}
			for ; leaked < target; leaked++ {
				wg.Add(1)
				go leakedWorker(&wg, never)
			}
		}
	}
	seconds := time.Since(start).Seconds()
	g := runtime.NumGoroutine()
	close(never)
	wg.Wait()

	r := report{
		Workload:         "goroutineleak",
		GoVersion:        runtime.Version(),
		Seconds:          seconds,
		GOMAXPROCS:       runtime.GOMAXPROCS(0),
		Goroutines:       g,
		CgoCalls:         runtime.NumCgoCall(),
		CPUClasses:       cpuClasses(),
		Rate:             *rate,
		Max:              *maxLeak,
		LeakedGoroutines: leaked,
		LeakedPerSecond:  float64(leaked) / seconds,
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
