// goroutineleak reproduces docs/pathologies.md row 7, "goroutine leak": goroutines that block
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
	"flag"
	"runtime"
	"sync"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
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
	end := truth.Start("goroutineleak: -rate 1..100000, -max 1..10000000", func() bool {
		return *rate < 1 || *rate > 100000 || *maxLeak < 1 || *maxLeak > 10000000
	})

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
		case <-end.Signal:
			break loop
		case <-end.Timeout:
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
		Common:           truth.Collect("goroutineleak", seconds, g),
		Rate:             *rate,
		Max:              *maxLeak,
		LeakedGoroutines: leaked,
		LeakedPerSecond:  float64(leaked) / seconds,
	}
	truth.Print(r)
}
