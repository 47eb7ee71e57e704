// pingpong: goroutine pairs bouncing a token over unbuffered channels, plus sleepers.
//
// Every round trip parks and readies goroutines (runtime.mcall -> park_m), and with
// GOMAXPROCS >= 2 idle Ms are parked and woken through runtime.futex; sysmon and spinning Ms
// call runtime.usleep. Prints one JSON line of ground truth at exit.
package main

import (
	"encoding/json"
	"flag"
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
	Workload   string             `json:"workload"`
	GoVersion  string             `json:"go_version"`
	Seconds    float64            `json:"seconds"`
	RoundTrips uint64             `json:"round_trips"`
	Sleeps     uint64             `json:"sleeps"`
	GOMAXPROCS int                `json:"gomaxprocs"`
	Goroutines int                `json:"goroutines"`
	CgoCalls   int64              `json:"cgo_calls"`
	CPUClasses map[string]float64 `json:"cpu_classes"`
}

// cpuClasses reads runtime/metrics /cpu/classes/* (Go >= 1.20; empty before).
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
	metrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindFloat64 {
			out[s.Name] = s.Value.Float64()
		}
	}
	return out
}

func main() {
	pairs := flag.Int("pairs", 2, "goroutine pairs bouncing a token")
	sleepers := flag.Int("sleepers", 2, "goroutines sleeping in a loop")
	sleep := flag.Duration("sleep", time.Millisecond, "how long each sleeper sleeps per iteration")
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()

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

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(*duration)
	}
	select {
	case <-sig:
	case <-timeout:
	}
	goroutines := runtime.NumGoroutine()
	close(stop)
	wg.Wait()

	r := report{
		Workload:   "pingpong",
		GoVersion:  runtime.Version(),
		Seconds:    time.Since(start).Seconds(),
		RoundTrips: atomic.LoadUint64(&roundTrips),
		Sleeps:     atomic.LoadUint64(&sleeps),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Goroutines: goroutines,
		CgoCalls:   runtime.NumCgoCall(),
		CPUClasses: cpuClasses(),
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}
