// A thread with a deep stack for clBuildProgram, started for each build and joined.
#include "backends/opencl/build_thread.hpp"

#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace kiln::detail {

namespace {

struct build_call {
  const std::function<void()>* work;
  std::exception_ptr thrown;  // rethrown on the caller's thread (std::bad_alloc, say)
};

void* call(void* p) {
  auto* c = static_cast<build_call*>(p);
  try {
    (*c->work)();
  } catch (...) {
    c->thrown = std::current_exception();
  }
  return nullptr;
}

error thread_error(const char* what, int e) {
  return make_error(errc::device_error, "starting the OpenCL build thread (" + std::to_string(build_stack_bytes >> 20) +
                                            " MiB stack) failed: " + what + ": " + std::strerror(e));
}

}  // namespace

// A fresh thread per build rather than one kept waiting: builds are rare (once per program and
// device) and take milliseconds to seconds, so starting a thread costs little next to one, and
// no idle thread holds its stack between builds.
status run_on_build_thread(const std::function<void()>& work) {
  pthread_attr_t attr;
  if (const int e = pthread_attr_init(&attr); e != 0) return thread_error("pthread_attr_init", e);
  build_call c{&work, nullptr};
  pthread_t thread;
  int e = pthread_attr_setstacksize(&attr, build_stack_bytes);
  const char* failed = "pthread_attr_setstacksize";
  if (e == 0) {
    e = pthread_create(&thread, &attr, call, &c);
    failed = "pthread_create";
  }
  pthread_attr_destroy(&attr);
  if (e != 0) return thread_error(failed, e);
  // Joining a joinable thread of ours cannot fail; if it did, `work` might still be running with
  // references into the caller's frame, and there would be no safe way on.
  if (pthread_join(thread, nullptr) != 0) std::abort();
  if (c.thrown) std::rethrow_exception(c.thrown);
  return {};
}

}  // namespace kiln::detail
