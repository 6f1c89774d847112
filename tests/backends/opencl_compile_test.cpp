// OpenCL program builds that need a deep stack (long expressions under PoCL's in-process LLVM), called from threads with small stacks.
#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend_test_support.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;

// Less than the Erlang VM gives a dirty scheduler (+sssdcpu: 40 kilowords, 320 KiB): built on the
// calling thread, the chain below overran 256 KiB inside PoCL's LLVM (its scalar evolution), so
// this stack leaves twice that margin for the test to fail by, were the build not moved.
constexpr std::size_t small_stack_bytes = std::size_t{128} << 10;

// Runs `fn` on a new thread with a stack of `bytes`, and waits for it. A failure to start the
// thread is reported as a test failure by the caller (the returned error number).
int run_on_small_stack(std::size_t bytes, const std::function<void()>& fn) {
  pthread_attr_t attr;
  if (int e = pthread_attr_init(&attr); e != 0) return e;
  int e = pthread_attr_setstacksize(&attr, bytes);
  pthread_t thread;
  auto call = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  if (e == 0) e = pthread_create(&thread, &attr, call, const_cast<std::function<void()>*>(&fn));
  pthread_attr_destroy(&attr);
  if (e == 0) e = pthread_join(thread, nullptr);
  return e;
}

// x + c1 + c2 + ... + c_ops, in postfix: one long chain, each addition depending on the one before.
std::vector<i64> addition_chain(int ops, std::uint64_t seed, i64& sum) {
  std::mt19937_64 rng(seed);
  std::vector<i64> code = {static_cast<i64>(kiln::op::arg), 0};
  sum = 0;
  for (int i = 0; i < ops; ++i) {
    const i64 c = static_cast<i64>(rng() % 1000) + 1;
    sum += c;
    code.insert(code.end(), {static_cast<i64>(kiln::op::literal), c, static_cast<i64>(kiln::op::add)});
  }
  return code;
}

TEST(OpenCLCompile, LongChainBuildsFromASmallStack) {
  // PoCL keeps built programs on disk and would skip the deep compile on every run after the
  // first; this is the suite's first OpenCL call, so PoCL has not read its settings yet.
  ASSERT_EQ(setenv("POCL_KERNEL_CACHE", "0", 1), 0);
  auto d = kiln::resolve(options_for("opencl"));
  if (!d) GTEST_SKIP() << "no OpenCL device: " << d.err().message;

  constexpr int ops = 1000;
  i64 sum = 0;
  const std::vector<i64> code = addition_chain(ops, 2026, sum);
  std::vector<i64> in(1000);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<i64>(i * i) - 300000;
  const kiln::kernel prog{code, 1, 1, 0, 3};
  const kiln::arg args[] = {kiln::arg::of_array(in)};
  std::vector<i64> want(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) want[i] = in[i] + 3 * sum;

  std::vector<i64> out(in.size());
  kiln::status status;
  double seconds = 0;
  const int e = run_on_small_stack(small_stack_bytes, [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const std::span<i64> outs[] = {out};
    auto r = kiln::run(prog, args, outs, options_for("opencl"));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r) status = r.err();
  });
  ASSERT_EQ(e, 0) << "could not run a thread with a " << small_stack_bytes << "-byte stack: " << std::strerror(e);
  ASSERT_TRUE(status.ok()) << status.err().message;
  EXPECT_EQ(out, want) << first_difference(out, want);
  std::printf("a %d-addition chain built and ran on %s in %.2f s from a %zu KiB stack\n", ops, d.value().name.c_str(),
              seconds, small_stack_bytes >> 10);

  // The same program again: built once per device, so the second call only runs it.
  std::vector<i64> again(in.size());
  const int e2 = run_on_small_stack(small_stack_bytes, [&] {
    const std::span<i64> outs[] = {again};
    auto r = kiln::run(prog, args, outs, options_for("opencl"));
    if (!r) status = r.err();
  });
  ASSERT_EQ(e2, 0) << std::strerror(e2);
  ASSERT_TRUE(status.ok()) << status.err().message;
  EXPECT_EQ(again, want) << first_difference(again, want);
}

}  // namespace
