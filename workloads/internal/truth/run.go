package truth

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// Start adds the -duration flag, parses the command line, exits 2 with usage on stderr if
// invalid (nil: every value is valid) says the flags are out of range, then installs the stop
// handler. Call it before any work starts, so that an early signal still ends in a report.
func Start(usage string, invalid func() bool) Stop {
	duration := flag.Duration("duration", 0, "how long to run; 0 runs until SIGTERM or SIGINT")
	flag.Parse()
	if invalid != nil && invalid() {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	return newStop(*duration)
}

// Fail reports a setup or I/O failure (a, on stderr) and exits 1 without a report.
func Fail(a ...any) {
	fmt.Fprintln(os.Stderr, a...)
	os.Exit(1)
}

// Stop is what ends a run: the first event on either channel. Callers select on the channels
// themselves (or call Wait): a helper goroutine would make the goroutine count racy.
type Stop struct {
	// Signal receives SIGTERM or SIGINT.
	Signal <-chan os.Signal
	// Timeout fires when the -duration has elapsed; nil (never ready) for a duration of 0.
	Timeout <-chan time.Time
}

func newStop(d time.Duration) Stop {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var timeout <-chan time.Time
	if d > 0 {
		timeout = time.After(d)
	}
	return Stop{Signal: sig, Timeout: timeout}
}

// Wait blocks until the run is to end and returns runtime.NumGoroutine() at once, while the
// workers are all still there: the report's goroutines field.
func (s Stop) Wait() (goroutines int) {
	select {
	case <-s.Signal:
	case <-s.Timeout:
	}
	return runtime.NumGoroutine()
}
