/* Defect 10 (issue 8): signals the program raises are swallowed. NitroHeap's
 * fault handler returns for a SIGSEGV/SIGBUS that no fault in its own memory
 * caused, so raise(SIGSEGV), kill(getpid(), SIGSEGV) and raise(SIGBUS) leave
 * the process running (glibc: it dies of the signal).
 *
 * Usage: signals MODE
 *   raise-segv, raise-bus, kill-segv, null-deref: must die of SIGSEGV/SIGBUS
 *     (the driver checks the status; reaching the end prints "survived" and
 *     exits 0, which is the failure)
 *   handler: installs its own SIGSEGV handler with sigaction after start,
 *     raises SIGSEGV; the handler must run (exit 0), otherwise exit 1
 *   handler-fault: own SIGSEGV handler that makes a PROT_NONE page of its
 *     own writable and returns, so the faulting write is retried (as garbage
 *     collectors do); must print "ok" and exit 0 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t g_handled = 0;
static char* g_page = NULL;

static void OnSegv(int sig) { g_handled = sig; }

static void OnFault(int sig, siginfo_t* info, void* ctx) {
  (void)ctx;
  if ((char*)info->si_addr >= g_page && (char*)info->si_addr < g_page + 4096) {
    mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
    g_handled = sig;
    return;
  }
  signal(sig, SIG_DFL); /* not ours: die of it */
}

/* Some heap activity first, so the allocator is fully started. */
static void Warm(void) {
  void* keep[64];
  for (int i = 0; i < 64; i++) keep[i] = malloc((size_t)i * 100 + 1);
  for (int i = 0; i < 64; i++) free(keep[i]);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "raise-segv";
  Warm();
  if (strcmp(mode, "raise-segv") == 0) {
    raise(SIGSEGV);
  } else if (strcmp(mode, "raise-bus") == 0) {
    raise(SIGBUS);
  } else if (strcmp(mode, "kill-segv") == 0) {
    kill(getpid(), SIGSEGV);
  } else if (strcmp(mode, "null-deref") == 0) {
    volatile int* volatile p = NULL;
    *p = 1;
  } else if (strcmp(mode, "handler") == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = OnSegv;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) return 2;
    raise(SIGSEGV);
    printf(g_handled == SIGSEGV ? "ok\n" : "handler did not run\n");
    return g_handled == SIGSEGV ? 0 : 1;
  } else if (strcmp(mode, "handler-fault") == 0) {
    g_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_page == MAP_FAILED) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnFault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) return 2;
    ((volatile char*)g_page)[100] = 7;
    Warm();
    int ok = g_handled == SIGSEGV && g_page[100] == 7;
    printf(ok ? "ok\n" : "handler did not run\n");
    return ok ? 0 : 1;
  } else {
    fprintf(stderr, "signals: unknown mode %s\n", mode);
    return 2;
  }
  printf("survived\n");
  return 0;
}
