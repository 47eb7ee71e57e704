// The C side of nativespin: plain pthreads created by C, never registered with the Go runtime
// (no M, no g, no cgocall on their stacks). They spin until told to stop.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

static pthread_t threads[GOCPU_NATIVE_MAX];
static atomic_int tids[GOCPU_NATIVE_MAX];
static atomic_int stop_flag;
static atomic_ullong total_iters;
static int started;

// Never inlined so that native stack samples name it.
__attribute__((noinline)) void *gocpu_native_spin(void *arg) {
	int i = (int)(intptr_t)arg;
	pthread_setname_np(pthread_self(), "gocpu-nspin");
	atomic_store(&tids[i], (int)syscall(SYS_gettid));
	uint64_t iters = 0;
	volatile uint64_t sink = 0;
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		for (int k = 0; k < 1000; k++) {
			sink += (uint64_t)k;
		}
		iters++;
	}
	atomic_fetch_add(&total_iters, iters);
	return 0;
}

int gocpu_native_start(int n) {
	if (n < 1 || n > GOCPU_NATIVE_MAX || started != 0) {
		return EINVAL;
	}
	// Spinners inherit this mask: with every signal blocked, process-directed signals (SIGTERM)
	// go to Go's threads and the Go runtime never runs a handler on a thread it does not know.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = 0;
	for (; started < n; started++) {
		err = pthread_create(&threads[started], 0, gocpu_native_spin, (void *)(intptr_t)started);
		if (err != 0) {
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, 0);
	// Publish only once every spinner has its tid, so the caller's report is complete.
	for (int i = 0; i < started; i++) {
		while (atomic_load(&tids[i]) == 0) {
			sched_yield();
		}
	}
	return err;
}

int gocpu_native_tid(int i) {
	if (i < 0 || i >= started) {
		return 0;
	}
	return atomic_load(&tids[i]);
}

uint64_t gocpu_native_stop(void) {
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < started; i++) {
		pthread_join(threads[i], 0);
	}
	return atomic_load(&total_iters);
}
