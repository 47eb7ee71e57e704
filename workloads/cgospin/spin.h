#include <stdint.h>

// Busy-loops for ms milliseconds of wall time (CLOCK_MONOTONIC); returns the outer loop count.
uint64_t gocpu_cgo_spin(int ms);
