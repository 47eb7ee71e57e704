// bursty: short goroutine ping-pong storms separated by quiet, on a wall-clock schedule.
//
// A steady storm hides estimator biases that a program which is busy only part of the time
// shows: a sample taken at a fixed phase of its cycle sees only the storm, or only the quiet.
// Storms start on a time.Ticker (as a build tool rebuilding every 250 ms does), last -on each,
// and bounce tokens between -pairs goroutine pairs (runtime.mcall, runtime.futex, osyield);
// in between, the pairs are parked. -phases replaces the periodic schedule with a list of
// phases cycled through, e.g. "3s:quiet,4s:storm" (phase changes). Prints one JSON line of
// ground truth at exit.
package main

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

// roundTrips counts tokens bounced back, over all pairs. A package variable, so that a test
// can read it from outside at its symbol's address without stopping or trapping the program:
// the accuracy harness's runtime.mcall truth (two parks per round trip) for a storm that a
// uprobe at runtime.mcall would slow threefold.
var roundTrips uint64

type report struct {
	truth.Common
	// Tokens bounced back, over all pairs.
	RoundTrips uint64 `json:"round_trips"`
	// Storms started.
	Storms uint64 `json:"storms"`
}

// phase is one step of the schedule: storm or quiet for a duration.
type phase struct {
	length time.Duration
	storm  bool
}

func parsePhases(s string) ([]phase, error) {
	var out []phase
	for _, part := range strings.Split(s, ",") {
		fields := strings.SplitN(part, ":", 2)
		if len(fields) != 2 {
			return nil, fmt.Errorf("phase %q: want <duration>:storm|quiet", part)
		}
		d, err := time.ParseDuration(fields[0])
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("phase %q: bad duration", part)
		}
		switch fields[1] {
		case "storm":
			out = append(out, phase{d, true})
		case "quiet":
			out = append(out, phase{d, false})
		default:
			return nil, fmt.Errorf("phase %q: want storm or quiet", part)
		}
	}
	return out, nil
}

// gate lets the pairs run while a storm is on: closed channel = storm.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
	on   bool
}

func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

func (g *gate) set(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on == g.on {
		return
	}
	g.on = on
	if on {
		close(g.open)
	} else {
		g.open = make(chan struct{})
	}
}

func (g *gate) storming() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.on
}

func main() {
	pairs := flag.Int("pairs", 2, "goroutine pairs bouncing a token during storms")
	period := flag.Duration("period", 250*time.Millisecond, "a storm starts every period")
	on := flag.Duration("on", 60*time.Millisecond, "how long each storm lasts")
	phases := flag.String("phases", "", "instead of -period/-on: phases cycled through, e.g. 3s:quiet,4s:storm")
	var schedule []phase
	end := truth.Start("bursty: -on must be in (0, -period], -phases like 3s:quiet,4s:storm", func() bool {
		if *phases != "" {
			var err error
			schedule, err = parsePhases(*phases)
			return err != nil
		}
		return *on <= 0 || *period <= 0 || *on > *period
	})

	start := time.Now()
	stop := make(chan struct{})
	var storms uint64
	var wg sync.WaitGroup
	g := &gate{open: make(chan struct{})}

	for i := 0; i < *pairs; i++ {
		ping, pong := make(chan int), make(chan int)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case v := <-ping:
					pong <- v
				case <-stop:
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-g.wait():
				case <-stop:
					return
				}
				for j := 0; j < 64 && g.storming(); j++ {
					select {
					case ping <- 1:
					case <-stop:
						return
					}
					<-pong
					atomic.AddUint64(&roundTrips, 1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if schedule != nil {
			for i := 0; ; i = (i + 1) % len(schedule) {
				p := schedule[i]
				if p.storm {
					atomic.AddUint64(&storms, 1)
				}
				g.set(p.storm)
				select {
				case <-time.After(p.length):
				case <-stop:
					g.set(false)
					return
				}
			}
		}
		tick := time.NewTicker(*period)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				atomic.AddUint64(&storms, 1)
				g.set(true)
				select {
				case <-time.After(*on):
				case <-stop:
				}
				g.set(false)
			case <-stop:
				return
			}
		}
	}()

	goroutines := end.Wait()
	close(stop)
	wg.Wait()

	truth.Print(report{
		Common:     truth.Collect("bursty", time.Since(start).Seconds(), goroutines),
		RoundTrips: atomic.LoadUint64(&roundTrips),
		Storms:     atomic.LoadUint64(&storms),
	})
}
