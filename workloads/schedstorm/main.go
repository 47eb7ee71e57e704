// schedstorm reproduces docs/pathologies.md row 3, "scheduler spin / futex storm", in two modes:
//
//   - pingpong (default): -pairs goroutine pairs bounce a token over unbuffered channels with
//     trivial work (v+1), GOMAXPROCS >= 2. With -select (default) every send and receive is a
//     select that also watches one quit channel shared by all goroutines, as code selecting on
//     ctx.Done() does: selectgo -> sellock takes that channel's runtime lock on every operation,
//     so Ps fight over it (lock2 spinning in procyield, osyield, futexsleep; unlock2 ->
//     futexwakeup). Every hand-off parks one goroutine (gopark -> mcall(park_m) -> schedule)
//     and readies the other (goready -> runqput, wakep); Ps that run dry go through
//     findRunnable (stealWork, runqgrab -> usleep(3)) and stopm -> mPark -> notesleep ->
//     futexsleep, and wakep -> startm -> notewakeup -> futexwakeup wakes them again. Measured
//     with perf (Go 1.25, 4 pairs): procyield 17%, unlock2 12%, lock2 11%, selectgo 10%, the
//     goroutines' own code ~0. -select=false uses plain sends/receives: still all park/ready,
//     but with 2+ pairs on 2 Ps the run queues never drain and futex traffic almost vanishes.
//   - timers: -timers goroutines each loop on time.Sleep(-interval), ~10 µs: timer heap
//     (addtimer / modtimer, runtimer, checkTimers), netpoll / futex wake-ups and the same
//     park/ready path.
//
// pprof shows runtime.mcall, park_m, findRunnable, futex and few goroutines running;
// runtime/metrics counts spinning Ms that hold a P as "user", so it cannot show this either.
// What gocpu must report: high futex wake/wait and mcall rates; scheduler + futex share of CPU
// high; wake-up amplification; pseudo-idle flagged.
//
// It is also the overhead benchmark's workload: ops is counted over one window (all goroutines
// released together by closing a gate; the window opens -warmup later, so that a tracer has found
// the process and settled, and ends when -duration has elapsed since start) and seconds is that
// window, so ops_per_second is comparable run to run. ops_per_cpu_second divides by the process
// CPU (getrusage) over the same window.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

import (
	"flag"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// "pingpong" or "timers".
	Mode string `json:"mode"`
	// pingpong: goroutine pairs; timers: 0.
	Pairs int `json:"pairs"`
	// pingpong: the -select flag (sends/receives select on a shared quit channel); timers: false.
	Select bool `json:"select"`
	// timers: sleeping goroutines; pingpong: 0.
	Timers int `json:"timers"`
	// timers: the sleep per iteration in seconds; pingpong: 0.
	IntervalSeconds float64 `json:"interval_seconds"`
	// pingpong: completed round trips (two channel hand-offs each); timers: completed sleeps.
	Ops uint64 `json:"ops"`
	// Ops / Seconds.
	OpsPerSecond float64 `json:"ops_per_second"`
	// Process CPU (user + system) during the measured window.
	WindowCPUSeconds float64 `json:"window_cpu_seconds"`
	// Ops / WindowCPUSeconds.
	OpsPerCPUSecond float64 `json:"ops_per_cpu_second"`
	// Ops per second in each whole second of the window, in order: shows a change of pace
	// within the run (on a VM, the host moving the vCPUs) that the window's average hides.
	PerSecond []float64 `json:"per_second"`
}

func main() {
	mode := flag.String("mode", "pingpong", "pingpong (channel pairs) or timers (goroutines on short sleeps)")
	pairs := flag.Int("pairs", 4, "pingpong mode: goroutine pairs bouncing a token (1-100000)")
	timers := flag.Int("timers", 100, "timers mode: goroutines looping on time.Sleep (1-100000)")
	interval := flag.Duration("interval", 10*time.Microsecond, "timers mode: sleep per iteration")
	useSelect := flag.Bool("select", true, "pingpong mode: every send/receive also selects on one shared quit channel, as code selecting on ctx.Done() does (runtime lock contention on that channel); false uses plain sends/receives")
	procs := flag.Int("gomaxprocs", 0, "GOMAXPROCS; 0 keeps the runtime's default but at least 2")
	warmup := flag.Duration("warmup", 0, "run this long before the measured window opens (shorter than -duration)")
	end := truth.Start("schedstorm: -mode pingpong|timers, -pairs and -timers 1..100000, -interval > 0, -gomaxprocs >= 0, -warmup >= 0", func() bool {
		return (*mode != "pingpong" && *mode != "timers") || *pairs < 1 || *pairs > 100000 ||
			*timers < 1 || *timers > 100000 || *interval <= 0 || *procs < 0 || *warmup < 0
	})
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	} else if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}

	var stop atomic.Bool
	quit := make(chan struct{})
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var counts []counter // one per counting goroutine, read at the window's start and end
	if *mode == "pingpong" {
		counts = make([]counter, *pairs)
		for i := range counts {
			ping, pong := make(chan uint64), make(chan uint64)
			wg.Add(2)
			if *useSelect {
				go selectPonger(&wg, ping, pong, quit)
				go selectPinger(&wg, ping, pong, quit, gate, &counts[i])
			} else {
				go plainPonger(&wg, ping, pong)
				go plainPinger(&wg, ping, pong, &stop, gate, &counts[i])
			}
		}
	} else {
		counts = make([]counter, *timers)
		for i := range counts {
			wg.Add(1)
			go sleeper(&wg, *interval, &stop, gate, &counts[i])
		}
	}

	close(gate)
	time.Sleep(*warmup)
	ops0 := total(counts)
	u0, s0 := truth.CPUTimes()
	t0 := time.Now()
	stopSampling := sampleEverySecond(counts, ops0, t0)
	g := end.Wait()
	ops := total(counts) - ops0
	seconds := time.Since(t0).Seconds()
	u1, s1 := truth.CPUTimes()
	stop.Store(true)
	close(quit)
	wg.Wait()

	window := (u1 - u0) + (s1 - s0)
	r := report{
		Common:           truth.Collect("schedstorm", seconds, g),
		Mode:             *mode,
		Ops:              ops,
		OpsPerSecond:     float64(ops) / seconds,
		WindowCPUSeconds: window,
		PerSecond:        stopSampling(),
	}
	if *mode == "pingpong" {
		r.Pairs = *pairs
		r.Select = *useSelect
	} else {
		r.Timers = *timers
		r.IntervalSeconds = interval.Seconds()
	}
	if window > 0 {
		r.OpsPerCPUSecond = float64(ops) / window
	}
	truth.Print(r)
}

// counter is one goroutine's completed operations, alone on its cache line so that counting
// does not make the Ps share one.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

// sampleEverySecond records the ops rate of every whole second from (ops0, t0) on until the
// returned function is called; that function returns the rates.
func sampleEverySecond(counts []counter, ops0 uint64, t0 time.Time) func() []float64 {
	done := make(chan struct{})
	out := make(chan []float64)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var rates []float64
		prev, last := ops0, t0
		for {
			select {
			case now := <-tick.C:
				ops := total(counts)
				rates = append(rates, float64(ops-prev)/now.Sub(last).Seconds())
				prev, last = ops, now
			case <-done:
				out <- rates
				return
			}
		}
	}()
	return func() []float64 {
		close(done)
		return <-out
	}
}

// total sums the counters.
func total(counts []counter) uint64 {
	var t uint64
	for i := range counts {
		t += counts[i].n.Load()
	}
	return t
}

// selectPonger answers each token on ping with token+1 on pong until quit is closed.
func selectPonger(wg *sync.WaitGroup, ping <-chan uint64, pong chan<- uint64, quit <-chan struct{}) {
	defer wg.Done()
	for {
		select {
		case v := <-ping:
			select {
			case pong <- v + 1:
			case <-quit:
				return
			}
		case <-quit:
			return
		}
	}
}

// selectPinger bounces a token off selectPonger from the gate until quit; stores round trips.
func selectPinger(wg *sync.WaitGroup, ping chan<- uint64, pong <-chan uint64, quit, gate <-chan struct{}, slot *counter) {
	defer wg.Done()
	<-gate
	var n uint64
	for {
		select {
		case ping <- n:
		case <-quit:
			return
		}
		select {
		case n = <-pong:
			slot.n.Store(n)
		case <-quit:
			return
		}
	}
}

// plainPonger answers each token on ping with token+1 on pong until ping is closed.
func plainPonger(wg *sync.WaitGroup, ping <-chan uint64, pong chan<- uint64) {
	defer wg.Done()
	for v := range ping {
		pong <- v + 1
	}
}

// plainPinger bounces a token off plainPonger from the gate until stop; stores round trips.
func plainPinger(wg *sync.WaitGroup, ping chan<- uint64, pong <-chan uint64, stop *atomic.Bool, gate <-chan struct{}, slot *counter) {
	defer wg.Done()
	<-gate
	var n uint64
	for !stop.Load() {
		ping <- n
		n = <-pong
		slot.n.Store(n)
	}
	close(ping)
}

// sleeper loops on time.Sleep(interval) from the gate until stop; stores completed sleeps.
func sleeper(wg *sync.WaitGroup, interval time.Duration, stop *atomic.Bool, gate <-chan struct{}, slot *counter) {
	defer wg.Done()
	<-gate
	for !stop.Load() {
		time.Sleep(interval)
		slot.n.Add(1)
	}
}
