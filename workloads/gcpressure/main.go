// gcpressure reproduces docs/pathologies.md row 6, "GC pressure": goroutines allocate short-lived
// objects at a high rate with a small GOGC (debug.SetGCPercent(-gogc), default 10) over a
// pointer-rich live heap of -live-mb that every cycle has to mark again.
//
// Runtime paths: runtime.mallocgc (newobject, the allocator's span refill and sweeping, which
// Go counts as user time) triggers GC cycles back to back: gcStart (stop the world),
// gcBgMarkWorker (dedicated / fractional / idle mark workers: gcDrain, scanobject,
// greyobject), gcAssistAlloc (mark assists charged to the allocating goroutines), gcMarkDone /
// gcMarkTermination (stop the world again), bgsweep. pprof shows GC workers and mallocgc.
//
// What gocpu must report: a GC class within +-5 percentage points of the program's own
// /cpu/classes/gc/total, i.e. of gc_cpu_share in this report (Go >= 1.20).
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

import (
	"flag"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// The -goroutines, -gogc and -live-mb flags as used.
	AllocGoroutines int `json:"alloc_goroutines"`
	GOGC            int `json:"gogc"`
	LiveMB          int `json:"live_mb"`
	// Short-lived objects this program allocated (its own count, not the runtime's).
	Allocs uint64 `json:"allocs"`
	// Allocs / Seconds.
	AllocsPerSecond float64 `json:"allocs_per_second"`
	// runtime.MemStats at the end of the run (before the report's own forced GC): completed GC
	// cycles, heap objects and bytes allocated since start, total stop-the-world pause, and
	// GCCPUFraction (the runtime's own estimate of GC CPU since start, available on Go 1.19).
	GCCycles       uint32  `json:"gc_cycles"`
	Mallocs        uint64  `json:"mallocs"`
	AllocBytes     uint64  `json:"alloc_bytes"`
	GCPauseSeconds float64 `json:"gc_pause_seconds"`
	GCCPUFraction  float64 `json:"gc_cpu_fraction"`
	// /cpu/classes/gc/total divided by the non-idle CPU (/cpu/classes/total - idle): the GC's
	// share of the CPU the Go runtime accounted to this process (Go >= 1.20; null before).
	GCCPUShare *float64 `json:"gc_cpu_share"`
}

// node is a small pointer-bearing heap object: the unit of both the live set and the churn.
type node struct {
	next *node
	val  [5]uint64
}

// allocLoop allocates and drops short chains of nodes until stop; returns the objects
// allocated. Never inlined so that it is visible in profiles.
//
//go:noinline
func allocLoop(stop *atomic.Bool, seed uint64) (uint64, uint64) {
	var n, sum uint64
	for !stop.Load() {
		var head *node
		for i := 0; i < 16; i++ {
			head = &node{next: head, val: [5]uint64{seed, uint64(i)}}
		}
		for p := head; p != nil; p = p.next {
			sum += p.val[1]
		}
		n += 16
	}
	return n, sum
}

// buildLive returns about mb MiB of linked nodes that stay reachable for the whole run.
func buildLive(mb int) []*node {
	const perChain = 1024
	size := 64 // sizeof(node) rounded to its size class
	chains := mb << 20 / (size * perChain)
	live := make([]*node, 0, chains)
	for c := 0; c < chains; c++ {
		var head *node
		for i := 0; i < perChain; i++ {
			head = &node{next: head}
		}
		live = append(live, head)
	}
	return live
}

func main() {
	goroutines := flag.Int("goroutines", 2, "goroutines allocating short-lived objects (1-10000)")
	gogc := flag.Int("gogc", 10, "GOGC percentage, set with debug.SetGCPercent (1-10000)")
	liveMB := flag.Int("live-mb", 16, "MiB of pointer-rich heap kept live for the whole run (0-4096)")
	end := truth.Start("gcpressure: -goroutines 1..10000, -gogc 1..10000, -live-mb 0..4096", func() bool {
		return *goroutines < 1 || *goroutines > 10000 || *gogc < 1 || *gogc > 10000 || *liveMB < 0 || *liveMB > 4096
	})
	debug.SetGCPercent(*gogc)

	start := time.Now()
	live := buildLive(*liveMB)
	var stop atomic.Bool
	var allocs, sink atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			n, s := allocLoop(&stop, seed)
			allocs.Add(n)
			sink.Add(s)
		}(uint64(i))
	}

	g := end.Wait()
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(live)
	r := report{
		Common:          truth.Collect("gcpressure", seconds, g),
		AllocGoroutines: *goroutines,
		GOGC:            *gogc,
		LiveMB:          *liveMB,
		Allocs:          allocs.Load(),
		AllocsPerSecond: float64(allocs.Load()) / seconds,
		GCCycles:        ms.NumGC,
		Mallocs:         ms.Mallocs,
		AllocBytes:      ms.TotalAlloc,
		GCPauseSeconds:  time.Duration(ms.PauseTotalNs).Seconds(),
		GCCPUFraction:   ms.GCCPUFraction,
	}
	c := r.CPUClasses
	if busy := c["/cpu/classes/total:cpu-seconds"] - c["/cpu/classes/idle:cpu-seconds"]; busy > 0 {
		share := c["/cpu/classes/gc/total:cpu-seconds"] / busy
		r.GCCPUShare = &share
	}
	truth.Print(r)
}
