#include <stdint.h>

// Starts n (1..GOCPU_NATIVE_MAX) spinning pthreads; returns 0 or a positive errno.
int gocpu_native_start(int n);
// Linux thread id of spinner i, valid after a successful gocpu_native_start.
int gocpu_native_tid(int i);
// Stops and joins the spinners; returns their total loop count.
uint64_t gocpu_native_stop(void);

#define GOCPU_NATIVE_MAX 64
