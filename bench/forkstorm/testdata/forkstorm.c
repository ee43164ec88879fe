// forkstorm: fork N children as fast as W workers can, from wherever it is
// started (the benchmark starts it inside a container). Every K-th child
// survives, paused, so the verifier can check where it was placed; the rest
// exit at once. Survivor PIDs are written to OUT, one per line. Prints
// "forks N seconds S rate R" on stdout, then exits; survivors stay until
// the caller kills them.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: forkstorm N WORKERS K OUT\n");
		return 2;
	}
	long n = atol(argv[1]), w = atol(argv[2]), k = atol(argv[3]);
	FILE *out = fopen(argv[4], "w");
	if (!out) { perror(argv[4]); return 2; }
	fflush(out);
	double t0 = now();
	for (long i = 0; i < w; i++) {
		pid_t p = fork();
		if (p < 0) { perror("fork"); return 1; }
		if (p > 0) continue;
		// A worker: children that exit are reaped by the kernel.
		signal(SIGCHLD, SIG_IGN);
		for (long j = i; j < n; j += w) {
			pid_t c;
			while ((c = fork()) < 0) usleep(100);
			if (c == 0) {
				if (k > 0 && j % k == 0) for (;;) pause();
				_exit(0);
			}
			if (k > 0 && j % k == 0) fprintf(out, "%d\n", c);
		}
		fflush(out);
		_exit(0);
	}
	for (long i = 0; i < w; i++) wait(NULL);
	double dt = now() - t0;
	printf("forks %ld seconds %.3f rate %.0f\n", n, dt, n / dt);
	return 0;
}
