// pingpong: goroutine pairs bouncing a token over unbuffered channels, plus sleepers.
//
// Every round trip parks and readies goroutines (runtime.mcall -> park_m), and with
// GOMAXPROCS >= 2 idle Ms are parked and woken through runtime.futex; sysmon and spinning Ms
// call runtime.usleep. Prints one JSON line of ground truth at exit.
package main

import (
	"flag"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// Tokens bounced back, over all pairs.
	RoundTrips uint64 `json:"round_trips"`
	// Completed sleeps, over all sleepers.
	Sleeps uint64 `json:"sleeps"`
}

func main() {
	pairs := flag.Int("pairs", 2, "goroutine pairs bouncing a token")
	sleepers := flag.Int("sleepers", 2, "goroutines sleeping in a loop")
	sleep := flag.Duration("sleep", time.Millisecond, "how long each sleeper sleeps per iteration")
	end := truth.Start("", nil)

	start := time.Now()
	stop := make(chan struct{})
	var roundTrips, sleeps uint64
	var wg sync.WaitGroup

	for i := 0; i < *pairs; i++ {
		ping, pong := make(chan int), make(chan int)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case v := <-ping:
					select {
					case pong <- v:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case ping <- 1:
				case <-stop:
					return
				}
				select {
				case <-pong:
					atomic.AddUint64(&roundTrips, 1)
				case <-stop:
					return
				}
			}
		}()
	}
	for i := 0; i < *sleepers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(*sleep):
					atomic.AddUint64(&sleeps, 1)
				}
			}
		}()
	}

	goroutines := end.Wait()
	close(stop)
	wg.Wait()

	r := report{
		Common:     truth.Collect("pingpong", time.Since(start).Seconds(), goroutines),
		RoundTrips: atomic.LoadUint64(&roundTrips),
		Sleeps:     atomic.LoadUint64(&sleeps),
	}
	truth.Print(r)
}
