// NitroHeap as a process sees it: run-time selection (NITROHEAP), option
// diagnostics (NITROHEAP_OPTIONS), the exit report, fork, and proxy frees of
// the C library's pointers. Each case runs heap_probe in a child process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

std::string g_probe;

struct Result {
  int exit_code = -1;
  std::string out, err;
};

Result RunProbe(const std::string& cmd, const std::vector<std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) abort();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(g_probe.c_str()), const_cast<char*>(cmd.c_str()), nullptr};
    execve(g_probe.c_str(), argv, envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  Result r;
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 120000) <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

bool Contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

TEST(Process, NitroIsTheDefault) {
  Result r = RunProbe("status", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "active=1 mode=nitro owns=1\n");
  EXPECT_EQ(r.err, "");
}

TEST(Process, LegacyRoutesEveryCallToTheCLibrary) {
  Result r = RunProbe("status", {"NITROHEAP=legacy"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "active=0 mode=legacy owns=0\n");
  Result churn = RunProbe("churn", {"NITROHEAP=legacy"});
  EXPECT_EQ(churn.exit_code, 0) << churn.err;
  Result forks = RunProbe("fork", {"NITROHEAP=legacy"});
  EXPECT_EQ(forks.exit_code, 0) << forks.err;
}

TEST(Process, ExplicitNitroAndUnknownValues) {
  EXPECT_EQ(RunProbe("status", {"NITROHEAP=nitro"}).out, "active=1 mode=nitro owns=1\n");
  Result r = RunProbe("status", {"NITROHEAP=fast"});
  EXPECT_EQ(r.out, "active=1 mode=nitro owns=1\n");
  EXPECT_EQ(r.err, "nitroheap: NITROHEAP=fast is neither 'nitro' nor 'legacy'; using the default, nitro\n");
}

TEST(Process, BadOptionsAreReportedOneLineEach) {
  Result r = RunProbe("status", {"NITROHEAP_OPTIONS=no_such_key=1,decay_ms=soon,tcache_max_bytes=1M"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "active=1 mode=nitro owns=1\n");
  EXPECT_TRUE(Contains(r.err, "nitroheap: NITROHEAP_OPTIONS: unknown option 'no_such_key'")) << r.err;
  EXPECT_TRUE(Contains(r.err, "nitroheap: NITROHEAP_OPTIONS: option 'decay_ms' has a malformed value 'soon'")) << r.err;
  int lines = 0;
  for (char c : r.err) lines += c == '\n';
  EXPECT_EQ(lines, 2) << r.err;
}

TEST(Process, HelpListsTheOptions) {
  Result r = RunProbe("status", {"NITROHEAP_OPTIONS=help"});
  EXPECT_TRUE(Contains(r.err, "tcache_max_bytes")) << r.err;
  EXPECT_TRUE(Contains(r.err, "decay_ms")) << r.err;
  EXPECT_TRUE(Contains(r.err, "stats_print")) << r.err;
}

TEST(Process, ReportAtExit) {
  Result r = RunProbe("churn", {"NITROHEAP_OPTIONS=stats_print=1"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.err, "---- NitroHeap heap report")) << r.err;
  EXPECT_TRUE(Contains(r.err, "allocated by program")) << r.err;
}

TEST(Process, ForkWhileOtherThreadsAllocate) {
  Result r = RunProbe("fork", {});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "forks=60 failures=0\n");
}

TEST(Process, ProxyFreesOfTheCLibrarysPointers) {
  Result r = RunProbe("proxy", {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "owned_before=0\nusable_ok=1\nmoved_into_nitroheap=1 kept=1\n");
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    fprintf(stderr, "usage: process_test PATH_TO_HEAP_PROBE\n");
    return 2;
  }
  g_probe = argv[1];
  return RUN_ALL_TESTS();
}
