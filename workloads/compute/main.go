// compute is PATHOLOGIES.md row 8, "healthy compute" (a control): N goroutines hashing in pure
// Go, nothing else.
//
// Runtime paths: none to speak of. Each goroutine calls main.hashLoop (a hand-rolled 64-bit
// multiply-xorshift hash over a 64 KiB buffer, never inlined) back to back; no allocation, no
// channel, no syscall in the loop. The runtime only steps in for sysmon's 10 ms preemption
// checks (SIGURG) and the final GC. pprof shows main.hashLoop.
//
// What gocpu must report: user class >= 90% (almost all of it in main.hashLoop); nothing
// flagged.
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
	HashGoroutines int `json:"hash_goroutines"`
	// Calls of main.hashLoop completed (one 64 KiB block each).
	Hashes uint64 `json:"hashes"`
	// Hashes / Seconds.
	HashesPerSecond float64 `json:"hashes_per_second"`
	// Bytes hashed in total.
	BytesHashed uint64 `json:"bytes_hashed"`
	// XOR of every hash, so that the work cannot be optimised away (and runs are comparable).
	Checksum uint64 `json:"checksum"`
}

const blockSize = 64 << 10

// hashLoop hashes buf with a 64-bit multiply-xorshift mix, 8 bytes at a time. It is the
// function that must dominate this program's CPU profile, hence never inlined.
//
//go:noinline
func hashLoop(buf []byte, seed uint64) uint64 {
	h := seed ^ 0x9e3779b97f4a7c15
	for i := 0; i+8 <= len(buf); i += 8 {
		v := uint64(buf[i]) | uint64(buf[i+1])<<8 | uint64(buf[i+2])<<16 | uint64(buf[i+3])<<24 |
			uint64(buf[i+4])<<32 | uint64(buf[i+5])<<40 | uint64(buf[i+6])<<48 | uint64(buf[i+7])<<56
		h ^= v
		h *= 0xff51afd7ed558ccd
		h ^= h >> 33
	}
	return h
}

func main() {
	goroutines := flag.Int("goroutines", 2, "goroutines hashing in pure Go (1-10000)")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *goroutines < 1 || *goroutines > 10000 {
		fmt.Fprintln(os.Stderr, "compute: -goroutines must be 1..10000")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	var stop atomic.Bool
	var hashes, checksum atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			buf := make([]byte, blockSize)
			for j := range buf {
				buf[j] = byte(uint64(j)*31 + seed)
			}
			var n, sum uint64
			h := seed
			for !stop.Load() {
				h = hashLoop(buf, h)
				sum ^= h
				n++
			}
			hashes.Add(n)
			// Stays XOR so that the total does not depend on the order goroutines finish in.
			for {
				old := checksum.Load()
				if checksum.CompareAndSwap(old, old^sum) {
					break
				}
			}
		}(uint64(i))
	}

	select {
	case <-sig:
	case <-timeout:
	}
	g := runtime.NumGoroutine() // before stop: the workers are all still there
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()

	r := report{
		Workload:        "compute",
		GoVersion:       runtime.Version(),
		Seconds:         seconds,
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		Goroutines:      g,
		CgoCalls:        runtime.NumCgoCall(),
		CPUClasses:      cpuClasses(),
		HashGoroutines:  *goroutines,
		Hashes:          hashes.Load(),
		HashesPerSecond: float64(hashes.Load()) / seconds,
		BytesHashed:     hashes.Load() * blockSize,
		Checksum:        checksum.Load(),
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
