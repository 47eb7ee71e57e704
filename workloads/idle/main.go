// idle is docs/pathologies.md row 9, "idle service" (a control): a program that mostly sleeps and
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
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"gocpu.dev/workloads/internal/truth"
)

type report struct {
	truth.Common
	// The loopback address the listener was bound to (nothing connects to it).
	ListenAddr string `json:"listen_addr"`
	// Connections accepted (expected 0; any is closed at once).
	Accepted uint64 `json:"accepted"`
	// Ticks of the 1 s ticker received.
	Ticks uint64 `json:"ticks"`
}

func main() {
	end := truth.Start("", nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		truth.Fail("idle: listen:", err)
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
		case <-end.Signal:
			break loop
		case <-end.Timeout:
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
		Common:     truth.Collect("idle", seconds, g),
		ListenAddr: ln.Addr().String(),
		Accepted:   accepted,
		Ticks:      ticks,
	}
	truth.Print(r)
}
