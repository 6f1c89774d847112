// OpenCL programs kept on disk: a second process builds every program from the cached binaries, with the same results.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backend_test_support.hpp"
#include "core/kernel_cache.hpp"
#include "kiln/kiln.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kiln_test;

// Names the cache folder of a child run; unset, the child test skips (it runs only when the
// parent starts this executable again for it).
constexpr const char* child_variable = "KILN_TEST_OPENCL_CACHE_CHILD";

// The child: a fresh process that runs the three kinds of OpenCL program (the built-in map,
// built when the device is set up; a kernel streamed from host arrays; a kernel of two arrays,
// over buffers) and reports the cache's counts, how long its first calls took, and whether
// every result was right.
TEST(OpenCLDiskCacheChild, RunsEveryKindOfProgram) {
  const char* dir = std::getenv(child_variable);
  if (!dir) GTEST_SKIP() << "run by OpenCLDiskCache in a process of its own";
  ::setenv("KILN_CACHE_DIR", dir, 1);
  using kiln::op;
  auto w = [](op o) { return static_cast<i64>(o); };
  const auto t0 = std::chrono::steady_clock::now();
  bool ok = true;

  const std::vector<i64> in = random_inputs(5000, 3);
  const kiln::map_params prm{6'700'417, 22, 4};
  std::vector<i64> mapped(in.size());
  auto r = kiln::logistic_map(in, mapped, prm, options_for("opencl"));
  ok = ok && r.ok() && mapped == reference(in, prm);

  // x * 3 + index: one array, one output, streamed (the device's build of a program).
  std::vector<i64> small(in.size()), out(in.size());
  for (std::size_t i = 0; i < small.size(); ++i) small[i] = static_cast<i64>(i) * 7 - 9000;
  const std::vector<i64> streamed{w(op::arg), 0, w(op::literal), 3, w(op::mul), w(op::index), w(op::add)};
  const kiln::arg one[] = {kiln::arg::of_array(small)};
  const std::span<i64> outs[] = {out};
  r = kiln::run(kiln::kernel{streamed, 1, 1, 0, 1}, one, outs, options_for("opencl"));
  ok = ok && r.ok();
  for (std::size_t i = 0; ok && i < small.size(); ++i) ok = out[i] == small[i] * 3 + static_cast<i64>(i);

  // a - b: two arrays, so copied to buffers and run there (the resident build).
  std::vector<i64> diff(in.size());
  const std::vector<i64> two_arrays{w(op::arg), 0, w(op::arg), 1, w(op::sub)};
  const kiln::arg two[] = {kiln::arg::of_array(small), kiln::arg::of_array(out)};
  const std::span<i64> diffs[] = {diff};
  r = kiln::run(kiln::kernel{two_arrays, 2, 1, 0, 1}, two, diffs, options_for("opencl"));
  ok = ok && r.ok();
  for (std::size_t i = 0; ok && i < small.size(); ++i) ok = diff[i] == small[i] - out[i];

  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto c = kiln::detail::kernel_cache_stats();
  std::printf("kiln-cache: hits=%llu misses=%llu rejected=%llu stores=%llu first_calls_ms=%.1f ok=%d\n",
              static_cast<unsigned long long>(c.hits), static_cast<unsigned long long>(c.misses),
              static_cast<unsigned long long>(c.rejected), static_cast<unsigned long long>(c.stores), ms, ok ? 1 : 0);
  if (!r.ok()) std::printf("error: %s\n", r.err().message.c_str());
  EXPECT_TRUE(ok);
}

struct child_report {
  unsigned long long hits = 0, misses = 0, rejected = 0, stores = 0;
  double ms = 0;
  int ok = 0;
  bool parsed = false;
  std::string output;
};

child_report run_child(const std::string& self, const fs::path& dir) {
  child_report rep;
  const std::string command = std::string(child_variable) + "='" + dir.string() + "' '" + self +
                              "' --gtest_filter=OpenCLDiskCacheChild.RunsEveryKindOfProgram 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return rep;
  char line[4096];
  while (std::fgets(line, sizeof line, p)) {
    rep.output += line;
    if (std::sscanf(line, "kiln-cache: hits=%llu misses=%llu rejected=%llu stores=%llu first_calls_ms=%lf ok=%d",
                    &rep.hits, &rep.misses, &rep.rejected, &rep.stores, &rep.ms, &rep.ok) == 6)
      rep.parsed = true;
  }
  rep.parsed = ::pclose(p) == 0 && rep.parsed;
  return rep;
}

TEST(OpenCLDiskCache, ASecondProcessBuildsEveryProgramFromTheDisk) {
  if (std::getenv(child_variable)) GTEST_SKIP() << "a child run";
  auto d = kiln::resolve(options_for("opencl"));
  if (!d) GTEST_SKIP() << "opencl unavailable: " << d.err().message;
  std::string pattern = (fs::temp_directory_path() / "kiln-opencl-cache-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const std::string self = fs::read_symlink("/proc/self/exe").string();

  const child_report first = run_child(self, dir);
  ASSERT_TRUE(first.parsed) << first.output;
  EXPECT_EQ(first.ok, 1) << first.output;
  EXPECT_EQ(first.hits, 0u) << first.output;
  EXPECT_GE(first.misses, 3u) << "the map (per device), the streamed and the resident program\n" << first.output;
  EXPECT_EQ(first.stores, first.misses) << first.output;

  const child_report second = run_child(self, dir);
  ASSERT_TRUE(second.parsed) << second.output;
  EXPECT_EQ(second.ok, 1) << second.output;
  EXPECT_EQ(second.hits, first.stores) << "every program from its binary\n" << second.output;
  EXPECT_EQ(second.misses, 0u) << second.output;
  EXPECT_EQ(second.stores, 0u) << second.output;
  std::printf("first process %.1f ms (compiled), second %.1f ms (from the disk)\n", first.ms, second.ms);

  // Every entry damaged: each is rejected, rebuilt from source and stored again, and the
  // results are still right.
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char last = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(last ^ 1));
    ++entries;
  }
  EXPECT_EQ(entries, first.stores);
  const child_report third = run_child(self, dir);
  ASSERT_TRUE(third.parsed) << third.output;
  EXPECT_EQ(third.ok, 1) << third.output;
  EXPECT_EQ(third.rejected, entries) << third.output;
  EXPECT_EQ(third.stores, entries) << third.output;
  const child_report fourth = run_child(self, dir);
  ASSERT_TRUE(fourth.parsed) << fourth.output;
  EXPECT_EQ(fourth.hits, entries) << fourth.output;

  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
