// The C side of manystacks: never-inlined functions that keep their own symbols. Built without
// frame pointers (see main.go's CFLAGS), as C usually is: a sample inside them cannot be unwound
// back to Go, so the daemon names their Go caller from the stack runtime.cgocall recorded.
#include <time.h>

#include "leaf.h"

// A trivial call: what matters is the cgo call itself (one stack capture per call).
__attribute__((noinline)) uint64_t gocpu_many_leaf(uint64_t x) {
	return x * 2654435761u + 1;
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// Burns `us` microseconds of CPU.
__attribute__((noinline)) uint64_t gocpu_many_fresh_spin(int us) {
	uint64_t end = now_ns() + (uint64_t)us * 1000ull;
	volatile uint64_t sink = 0;
	while (now_ns() < end) {
		for (int i = 0; i < 100; i++) {
			sink += (uint64_t)i;
		}
	}
	return sink;
}
