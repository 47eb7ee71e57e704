// Package truth is what every workload shares: the stop condition (SIGTERM/SIGINT or
// -duration), the exit codes, and the ground truth report's common fields (workloads/README.md).
//
// It starts no goroutine of its own: the reports' goroutine counts are compared with what gocpu
// sees, so any helper goroutine here would make them racy.
package truth

import (
	"encoding/json"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"
)

// Common is the fields every workload's report starts with; embed it first in the report.
type Common struct {
	Workload         string             `json:"workload"`
	GoVersion        string             `json:"go_version"`
	Seconds          float64            `json:"seconds"`
	GOMAXPROCS       int                `json:"gomaxprocs"`
	Goroutines       int                `json:"goroutines"`
	CgoCalls         int64              `json:"cgo_calls"`
	CPUClasses       map[string]float64 `json:"cpu_classes"`
	CPUUserSeconds   float64            `json:"cpu_user_seconds"`
	CPUSystemSeconds float64            `json:"cpu_system_seconds"`
}

// Collect fills the common fields at the end of a run, after the workers have stopped:
// seconds and goroutines as the caller measured them, the rest read now. It forces a GC (see
// cpuClasses), so a caller wanting figures from before that GC reads them first.
func Collect(workload string, seconds float64, goroutines int) Common {
	c := Common{
		Workload:   workload,
		GoVersion:  runtime.Version(),
		Seconds:    seconds,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Goroutines: goroutines,
		CgoCalls:   runtime.NumCgoCall(),
		CPUClasses: cpuClasses(),
	}
	// Last, so that it also covers the forced GC.
	c.CPUUserSeconds, c.CPUSystemSeconds = CPUTimes()
	return c
}

// Print writes report as the run's single JSON line on stdout; exits 1 if stdout fails.
func Print(report any) {
	if err := json.NewEncoder(os.Stdout).Encode(report); err != nil {
		os.Exit(1)
	}
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

// CPUTimes is the process's user and system CPU seconds so far (getrusage, all threads,
// including threads the Go runtime does not know about).
func CPUTimes() (user, system float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()
}
