#define CAF_SUITE persistence_rotation_child

#include "tests/persistence/rotation_child.hpp"

#include "caf/test/dsl.hpp"

#include <csignal>
#include <cstdlib>

#include <sys/wait.h>
#include <unistd.h>

#include "persistence/crypto_store.hpp"

namespace wh::test {

rotation_child::~rotation_child() {
  kill9();
}

bool rotation_child::read(uint64_t& out) {
  return fd_ >= 0 && ::read(fd_, &out, sizeof(out)) == static_cast<ssize_t>(sizeof(out));
}

bool rotation_child::kill9() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (pid_ <= 0)
    return false;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

rotation_child spawn_rotation_child(const std::string& data_dir, const std::string& mode) {
  int fds[2];
  if (::pipe(fds) != 0)
    CAF_FAIL("pipe");
  auto pid = ::fork();
  if (pid < 0)
    CAF_FAIL("fork");
  if (pid == 0) {
    ::close(fds[0]);
    ::setenv("WH_ROTATION_CHILD_DIR", data_dir.c_str(), 1);
    ::setenv("WH_ROTATION_CHILD_MODE", mode.c_str(), 1);
    ::setenv("WH_ROTATION_CHILD_FD", std::to_string(fds[1]).c_str(), 1);
    const char* argv[] = {"wh-persistence-tests", "-r", "60", "-s", "^persistence_rotation_child$", nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  return rotation_child{pid, fds[0]};
}

} // namespace wh::test

namespace {

void report(int fd, uint64_t x) {
  if (::write(fd, &x, sizeof(x)) != static_cast<ssize_t>(sizeof(x)))
    ::_exit(5);
}

} // namespace

// Runs only as the child started above (it is not registered with CTest).
CAF_TEST(rotate as a child until killed) {
  auto dir = std::getenv("WH_ROTATION_CHILD_DIR");
  auto mode = std::getenv("WH_ROTATION_CHILD_MODE");
  auto fd_text = std::getenv("WH_ROTATION_CHILD_FD");
  if (!dir || !mode || !fd_text)
    return;
  int fd = std::atoi(fd_text);
  using wh::persistence::rotation_step;
  if (std::string{mode} == "loop") {
    for (uint64_t i = 1;; ++i) {
      if (wh::persistence::rotate_master_key(dir, ""))
        ::_exit(4);
      report(fd, i);
    }
  }
  auto at = static_cast<rotation_step>(std::atoi(mode));
  wh::persistence::rotate_master_key(dir, "", [&](rotation_step s) {
    if (s != at)
      return;
    report(fd, static_cast<uint64_t>(s));
    for (;;)
      ::pause(); // killed here
  });
  ::_exit(3);
}
