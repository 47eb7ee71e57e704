// lockcontention reproduces docs/pathologies.md row 4, "lock contention": many goroutines contend on
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
	"flag"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
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
	end := truth.Start("lockcontention: -goroutines must be 2..100000, -work and -cs-work 0..1000000", func() bool {
		return *goroutines < 2 || *goroutines > 100000 || *work < 0 || *work > 1000000 || *csWork < 0 || *csWork > 1000000
	})

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

	g := end.Wait()
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()

	r := report{
		Common:           truth.Collect("lockcontention", seconds, g),
		Contenders:       *goroutines,
		CSWork:           *csWork,
		Work:             *work,
		Ops:              s.ops,
		OpsPerSecond:     float64(s.ops) / seconds,
		MutexWaitSeconds: floatMetric("/sync/mutex/wait/total:seconds"),
	}
	truth.Print(r)
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
