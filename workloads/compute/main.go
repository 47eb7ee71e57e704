// compute is docs/pathologies.md row 8, "healthy compute" (a control): N goroutines hashing in pure
// Go, nothing else.
//
// Runtime paths: none to speak of. Each goroutine calls main.hashLoop (a hand-rolled 64-bit
// multiply-xorshift hash over a 64 KiB buffer, never inlined) back to back; no allocation, no
// channel, no syscall in the loop. The runtime only steps in for sysmon's 10 ms preemption
// checks (SIGURG) and the final GC. pprof shows main.hashLoop.
//
// What gocpu must report: user class >= 90% (almost all of it in main.hashLoop); nothing
// flagged.
//
// Prints one JSON line of ground truth at exit (fields: see report).
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
	// The -goroutines flag as used.
	HashGoroutines int `json:"hash_goroutines"`
	// Calls of main.hashLoop completed (one 64 KiB block each).
	Hashes uint64 `json:"hashes"`
	// Hashes / Seconds.
	HashesPerSecond float64 `json:"hashes_per_second"`
	// Bytes hashed in total.
	BytesHashed uint64 `json:"bytes_hashed"`
	// XOR of every hash, so that the work cannot be optimised away (and runs are comparable).
	Checksum uint64 `json:"checksum"`
}

const blockSize = 64 << 10

// hashLoop hashes buf with a 64-bit multiply-xorshift mix, 8 bytes at a time. It is the
// function that must dominate this program's CPU profile, hence never inlined.
//
//go:noinline
func hashLoop(buf []byte, seed uint64) uint64 {
	h := seed ^ 0x9e3779b97f4a7c15
	for i := 0; i+8 <= len(buf); i += 8 {
		v := uint64(buf[i]) | uint64(buf[i+1])<<8 | uint64(buf[i+2])<<16 | uint64(buf[i+3])<<24 |
			uint64(buf[i+4])<<32 | uint64(buf[i+5])<<40 | uint64(buf[i+6])<<48 | uint64(buf[i+7])<<56
		h ^= v
		h *= 0xff51afd7ed558ccd
		h ^= h >> 33
	}
	return h
}

func main() {
	goroutines := flag.Int("goroutines", 2, "goroutines hashing in pure Go (1-10000)")
	end := truth.Start("compute: -goroutines must be 1..10000", func() bool {
		return *goroutines < 1 || *goroutines > 10000
	})

	var stop atomic.Bool
	var hashes, checksum atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			buf := make([]byte, blockSize)
			for j := range buf {
				buf[j] = byte(uint64(j)*31 + seed)
			}
			var n, sum uint64
			h := seed
			for !stop.Load() {
				h = hashLoop(buf, h)
				sum ^= h
				n++
			}
			hashes.Add(n)
			// Stays XOR so that the total does not depend on the order goroutines finish in.
			for {
				old := checksum.Load()
				if checksum.CompareAndSwap(old, old^sum) {
					break
				}
			}
		}(uint64(i))
	}

	g := end.Wait()
	stop.Store(true)
	seconds := time.Since(start).Seconds()
	wg.Wait()

	r := report{
		Common:          truth.Collect("compute", seconds, g),
		HashGoroutines:  *goroutines,
		Hashes:          hashes.Load(),
		HashesPerSecond: float64(hashes.Load()) / seconds,
		BytesHashed:     hashes.Load() * blockSize,
		Checksum:        checksum.Load(),
	}
	truth.Print(r)
}
