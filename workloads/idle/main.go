// idle is PATHOLOGIES.md row 9, "idle service" (a control): a program that mostly sleeps and
// waits on the network.
//
// Runtime paths: one goroutine blocks in (*net.TCPListener).Accept on a loopback listener
// nobody connects to (netpoll: gopark with "IO wait", the M in epoll_pwait / futexsleep), one
// wakes on a 1 s ticker (timer, "chan receive" / "select" park). Everything else is sysmon
// backing off to long usleeps. pprof shows nothing.
//
// What gocpu must report: near-zero CPU; nothing flagged.
//
// Prints one JSON line of ground truth at exit (fields: see report).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
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
	// The loopback address the listener was bound to (nothing connects to it).
	ListenAddr string `json:"listen_addr"`
	// Connections accepted (expected 0; any is closed at once).
	Accepted uint64 `json:"accepted"`
	// Ticks of the 1 s ticker received.
	Ticks uint64 `json:"ticks"`
}

func main() {
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	sig, timeout := stopSignal(*duration)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle: listen:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	var accepted uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "idle: accept:", err)
				return
			}
			accepted++ // only this goroutine writes it; read after wg.Wait
			c.Close()
		}
	}()

	start := time.Now()
	var ticks uint64
	tick := time.NewTicker(time.Second)
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-timeout:
			break loop
		case <-tick.C:
			ticks++
		}
	}
	tick.Stop()
	seconds := time.Since(start).Seconds()
	g := runtime.NumGoroutine()
	ln.Close()
	wg.Wait()

	r := report{
		Workload:   "idle",
		GoVersion:  runtime.Version(),
		Seconds:    seconds,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Goroutines: g,
		CgoCalls:   runtime.NumCgoCall(),
		CPUClasses: cpuClasses(),
		ListenAddr: ln.Addr().String(),
		Accepted:   accepted,
		Ticks:      ticks,
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
