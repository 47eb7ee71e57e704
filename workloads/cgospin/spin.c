// The C side of cgospin: one exported, never-inlined function so that it keeps its own symbol
// (gocpu_cgo_spin) in .symtab and shows up by name in native stack samples.
#include <time.h>

#include "spin.h"

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((noinline)) uint64_t gocpu_cgo_spin(int ms) {
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	uint64_t iters = 0;
	// volatile keeps the compiler from folding the inner loop away: this must burn CPU.
	volatile uint64_t sink = 0;
	while (now_ns() < end) {
		for (int i = 0; i < 1000; i++) {
			sink += (uint64_t)i;
		}
		iters++;
	}
	return iters;
}
