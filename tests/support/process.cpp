#include "tests/support/process.hpp"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace wh::test {

process::process(process&& other) noexcept : pid_(other.pid_) {
  other.pid_ = -1;
}

process& process::operator=(process&& other) noexcept {
  if (this != &other) {
    kill_now();
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

process::~process() {
  kill_now();
}

process process::spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  // Everything the child needs is built before fork: between fork and exec
  // it makes only async-signal-safe calls.
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto parent = ::getpid();
  process p;
  p.pid_ = ::fork();
  if (p.pid_ < 0)
    throw std::runtime_error("cannot spawn " + argv[0]);
  if (p.pid_ == 0) {
    // The child dies with the test process: a failed CAF_REQUIRE calls
    // abort(), no destructor runs, and a hub or simulator would otherwise
    // outlive the test. (Tests spawn from their main thread, whose exit is
    // what the signal follows.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
      ::_exit(127);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
      ::close(fd);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  return p;
}

void process::signal(int sig) {
  if (pid_ > 0)
    ::kill(pid_, sig);
}

bool process::wait_for(std::chrono::milliseconds timeout, int& exit_code) {
  if (pid_ <= 0)
    return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    auto rc = ::waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      pid_ = -1;
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    // Polling a child's exit status; not used to order events in the code under test.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void process::kill_now() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

uint16_t wait_for_port(const std::string& path, process& proc, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto text = read_file(path);
    if (!text.empty() && text.back() == '\n')
      return static_cast<uint16_t>(std::stoi(text));
    int code = 0;
    if (proc.wait_for(std::chrono::milliseconds(10), code))
      return 0;
  }
  return 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << content;
}

std::string bin(const std::string& name) {
  return std::string{WH_BIN_DIR} + "/" + name;
}

} // namespace wh::test
