// manystacks pushes a very large number of distinct call stacks through the daemon's stack maps,
// then runs two fixed, named stacks: whether stack capture still works after the churn is what
// it is for (issue 12: stack ids that are never freed make capture degrade on a long-running
// node).
//
// Churn phase (until SIGUSR1): -goroutines goroutines each walk their own share of 2^-depth
// paths in turn; a path is a recursion -depth calls deep through two functions (main.left,
// main.right) chosen by the path's bits, so every path is a distinct stack of return addresses.
// At the bottom, main.leaf spins in Go for -leaf-spin rounds (where the CPU samples land) and
// makes one cgo call (runtime.cgocall records the Go stack making it).
//
// Fresh phase (after SIGUSR1, until the end): the same goroutines alternate between
// main.freshGoSpin (pure Go) and main.freshCgoCaller, which calls the C function
// gocpu_many_fresh_spin for -fresh-c-us microseconds.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

// #cgo CFLAGS: -O2 -fomit-frame-pointer
// #include "leaf.h"
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
	// Bottom-of-recursion visits in the churn phase (each one cgo call), all goroutines.
	ChurnLeaves uint64 `json:"churn_leaves"`
	// Distinct paths (distinct stacks) visited in the churn phase.
	ChurnDistinctPaths uint64 `json:"churn_distinct_paths"`
	// Wall time of the churn phase.
	ChurnSeconds float64 `json:"churn_seconds"`
	// Calls of main.freshCgoCaller in the fresh phase.
	FreshCgoCalls uint64 `json:"fresh_cgo_calls"`
	// Wall time of the fresh phase (0 when SIGUSR1 never came).
	FreshSeconds float64 `json:"fresh_seconds"`
	// The flags as used.
	Depth      int `json:"depth"`
	Goroutines int `json:"spin_goroutines"`
}

var sink atomic.Uint64

//go:noinline
func left(path uint32, level int, spin int) uint64 {
	if level == 0 {
		return leaf(path, spin)
	}
	if path&1 == 0 {
		return left(path>>1, level-1, spin) + 1
	}
	return right(path>>1, level-1, spin) + 1
}

//go:noinline
func right(path uint32, level int, spin int) uint64 {
	if level == 0 {
		return leaf(path, spin)
	}
	if path&1 == 0 {
		return left(path>>1, level-1, spin) + 2
	}
	return right(path>>1, level-1, spin) + 2
}

//go:noinline
func leaf(path uint32, spin int) uint64 {
	x := uint64(path)
	for j := 0; j < spin; j++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return uint64(C.gocpu_many_leaf(C.uint64_t(x)))
}

//go:noinline
func freshGoSpin(rounds int) uint64 {
	x := uint64(rounds)
	for j := 0; j < rounds; j++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

//go:noinline
func freshCgoCaller(us int) uint64 {
	return uint64(C.gocpu_many_fresh_spin(C.int(us)))
}

func main() {
	goroutines := flag.Int("goroutines", 2, "goroutines walking paths (1-64)")
	depth := flag.Int("depth", 20, "recursion depth: 2^depth distinct paths (4-30)")
	leafSpin := flag.Int("leaf-spin", 2000, "Go rounds spun at each path's bottom (0-10000000)")
	freshCUs := flag.Int("fresh-c-us", 500, "microseconds per C call in the fresh phase (1-1000000)")
	end := truth.Start("manystacks: -goroutines 1..64, -depth 4..30, -leaf-spin 0..10000000, -fresh-c-us 1..1000000", func() bool {
		return *goroutines < 1 || *goroutines > 64 || *depth < 4 || *depth > 30 ||
			*leafSpin < 0 || *leafSpin > 10000000 || *freshCUs < 1 || *freshCUs > 1000000
	})
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)

	start := time.Now()
	var stop, fresh atomic.Bool
	var freshCalls atomic.Uint64
	leaves := make([]uint64, *goroutines)
	paths := uint64(1) << uint(*depth)
	share := paths / uint64(*goroutines)
	var wg sync.WaitGroup
	for g := 0; g < *goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Goroutine g walks paths g, g+G, g+2G, ...: its own residue class, in turn.
			for k := uint64(0); !stop.Load() && !fresh.Load(); k++ {
				path := uint32((uint64(g) + (k%share)*uint64(*goroutines)) % paths)
				sink.Add(left(path, *depth, *leafSpin))
				leaves[g] = k + 1
			}
			for !stop.Load() {
				sink.Add(freshGoSpin(200000))
				sink.Add(freshCgoCaller(*freshCUs))
				freshCalls.Add(1)
			}
		}(g)
	}

	var churnSeconds float64
	var freshStart time.Time
	var g int
	select {
	case <-usr1:
		churnSeconds = time.Since(start).Seconds()
		freshStart = time.Now()
		fresh.Store(true)
		g = end.Wait()
	case <-end.Signal:
		g = runtime.NumGoroutine()
	case <-end.Timeout:
		g = runtime.NumGoroutine()
	}
	seconds := time.Since(start).Seconds()
	if churnSeconds == 0 {
		churnSeconds = seconds
	}
	stop.Store(true)
	wg.Wait()

	var total, distinct uint64
	for _, n := range leaves {
		total += n
		if n < share {
			distinct += n
		} else {
			distinct += share
		}
	}
	r := report{
		Common:             truth.Collect("manystacks", seconds, g),
		ChurnLeaves:        total,
		ChurnDistinctPaths: distinct,
		ChurnSeconds:       churnSeconds,
		FreshCgoCalls:      freshCalls.Load(),
		Depth:              *depth,
		Goroutines:         *goroutines,
	}
	if !freshStart.IsZero() {
		r.FreshSeconds = time.Since(freshStart).Seconds()
	}
	truth.Print(r)
}
