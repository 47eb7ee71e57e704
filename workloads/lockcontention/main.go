// lockcontention reproduces PATHOLOGIES.md row 4, "lock contention": many goroutines contend on
// one sync.Mutex around tiny critical sections.
//
// Runtime paths: sync.(*Mutex).Lock -> lockSlow: a short active spin (sync.runtime_doSpin ->
// procyield, pure user CPU) while another P runs and the local run queue is empty, then
// sync.runtime_SemacquireMutex -> semacquire1 -> gopark (waitReasonSyncMutexLock,
// "sync.Mutex.Lock") -> mcall(park_m) -> schedule. Unlock -> unlockSlow -> semrelease1 ->
// readyWithTime -> goready; after 1 ms of waiting the mutex turns to starvation mode and hands
// off directly to the next waiter. Ps that run dry park their Ms in futexsleep and are woken by
// futexwakeup. pprof shows semacquire and runtime.futex.
//
// What gocpu must report: park time and futex rates high, attributed to lock waits; not
// confused with idle.
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
	Contenders int `json:"contenders"`
	// The -cs-work and -work flags as used.
	CSWork int `json:"cs_work"`
	Work   int `json:"work"`
	// Critical sections entered (counted inside the lock).
	Ops uint64 `json:"ops"`
	// Ops / Seconds.
	OpsPerSecond float64 `json:"ops_per_second"`
	// runtime/metrics /sync/mutex/wait/total:seconds: time goroutines spent blocked on
	// sync.Mutex / RWMutex / runtime locks (Go >= 1.20; null before).
	MutexWaitSeconds *float64 `json:"mutex_wait_seconds"`
}

// shared is what the mutex protects: a counter and a small table the critical section touches.
type shared struct {
	mu    sync.Mutex
	ops   uint64
	table [64]uint64
}

// critical is one tiny critical section. Never inlined so that it is visible in profiles.
//
//go:noinline
func (s *shared) critical(v uint64, n int) {
	s.mu.Lock()
	s.ops++
	s.table[v%uint64(len(s.table))] += outside(v, n)
	s.mu.Unlock()
}

// outside is n xorshift rounds: the work inside a critical section (-cs-work) and, optionally,
// between two of them (-work). A sub-microsecond critical section, hammered by many goroutines,
// keeps most of them parked on the mutex, so Ps keep running dry and Ms keep futex-sleeping and
// being woken: with an empty critical section the holder mostly unlocks before anyone parks.
//
//go:noinline
func outside(v uint64, n int) uint64 {
	for i := 0; i < n; i++ {
		v ^= v << 13
		v ^= v >> 7
		v ^= v << 17
	}
	return v
}

func main() {
	goroutines := flag.Int("goroutines", 32, "goroutines contending on one sync.Mutex (2-100000)")
	work := flag.Int("work", 0, "xorshift rounds between critical sections (0-1000000)")
	csWork := flag.Int("cs-work", 300, "xorshift rounds inside the critical section, ~0.3-0.5 µs at the default (0-1000000)")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if *goroutines < 2 || *goroutines > 100000 || *work < 0 || *work > 1000000 || *csWork < 0 || *csWork > 1000000 {
		fmt.Fprintln(os.Stderr, "lockcontention: -goroutines must be 2..100000, -work and -cs-work 0..1000000")
		os.Exit(2)
	}
	sig, timeout := stopSignal(*duration)

	var s shared
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			v := seed
			for !stop.Load() {
				v = outside(v, *work)
				s.critical(v, *csWork)
			}
		}(uint64(i)*0x9e3779b97f4a7c15 + 1)
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
		Workload:         "lockcontention",
		GoVersion:        runtime.Version(),
		Seconds:          seconds,
		GOMAXPROCS:       runtime.GOMAXPROCS(0),
		Goroutines:       g,
		CgoCalls:         runtime.NumCgoCall(),
		CPUClasses:       cpuClasses(),
		Contenders:       *goroutines,
		CSWork:           *csWork,
		Work:             *work,
		Ops:              s.ops,
		OpsPerSecond:     float64(s.ops) / seconds,
		MutexWaitSeconds: floatMetric("/sync/mutex/wait/total:seconds"),
	}
	r.CPUUserSeconds, r.CPUSystemSeconds = cpuTimes()
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}

// floatMetric reads one float64 runtime/metrics value; nil if this Go version lacks it.
func floatMetric(name string) *float64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return nil
	}
	v := s[0].Value.Float64()
	return &v
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
