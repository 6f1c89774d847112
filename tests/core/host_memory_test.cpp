// kiln::host_memory: sizes, alignment, reuse of freed blocks, moves, and the pool's pinning policy.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stop_token>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/backend.hpp"
#include "core/host_pool.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace std::chrono_literals;
using kiln::detail::host_pool_statistics;
using kiln::detail::host_pool_stats;

constexpr std::size_t mib = std::size_t{1} << 20;
// Elements that fill a size class of `bytes` exactly (classes go in 2 MiB steps up to 16 MiB).
constexpr std::size_t elements_of(std::size_t bytes) { return bytes / sizeof(std::int64_t); }

// A pinning allocator that pins nothing: heap memory, after an optional delay (what pinning costs
// on a GPU host), with the bytes it holds and the most it ever held.
struct fake_pinner {
  std::atomic<int> delay_ms{0};
  std::atomic<bool> fail{false};
  std::atomic<int> attempts{0};
  std::mutex m;
  std::map<void*, std::size_t> live;  // block -> bytes
  std::size_t live_bytes = 0, peak_bytes = 0;

  void* pin(std::size_t bytes) {
    ++attempts;
    if (int d = delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(d));
    if (fail.load()) return nullptr;
    void* p = std::aligned_alloc(64, bytes);
    std::lock_guard<std::mutex> lock(m);
    live.emplace(p, bytes);
    live_bytes += bytes;
    peak_bytes = std::max(peak_bytes, live_bytes);
    return p;
  }
  void unpin(void* p) {
    std::lock_guard<std::mutex> lock(m);
    auto it = live.find(p);
    ASSERT_NE(it, live.end()) << "unpinned a block that was not pinned";
    live_bytes -= it->second;
    live.erase(it);
    std::free(p);
  }
  bool holds(void* p) {
    std::lock_guard<std::mutex> lock(m);
    return live.count(p) != 0;
  }
  std::size_t held() {
    std::lock_guard<std::mutex> lock(m);
    return live_bytes;
  }
};

// Waits (up to 5 s) for `done` to hold of the pool's statistics.
bool wait_for(const std::function<bool(const host_pool_stats&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(host_pool_statistics())) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done(host_pool_statistics());
}

bool pins_settled() {
  return wait_for([](const host_pool_stats& s) { return s.pending_pins == 0; });
}

// Tests of the pool's policy run with a fake pinning allocator, so that they mean the same with
// and without a GPU, and leave the process's own settings behind them.
class HostPool : public ::testing::Test {
 protected:
  void install(std::size_t pinned_limit, std::chrono::milliseconds idle = 60s,
               std::size_t ordinary_limit = std::size_t{1} << 30, bool spares = false) {
    kiln::detail::host_pool_settings s;
    s.pinned_limit = pinned_limit;
    s.ordinary_cache_limit = ordinary_limit;
    s.idle = idle;
    s.spares = spares;
    auto f = fake_;
    s.pin = [f](std::size_t bytes) { return f->pin(bytes); };
    s.unpin = [f](void* p) { f->unpin(p); };
    ASSERT_TRUE(kiln::detail::set_host_pool_settings(std::move(s)));
  }
  void TearDown() override {
    EXPECT_TRUE(kiln::detail::set_host_pool_settings(kiln::detail::default_host_pool_settings()));
    EXPECT_EQ(fake_->held(), 0u) << "pinned blocks left behind";
  }
  std::shared_ptr<fake_pinner> fake_ = std::make_shared<fake_pinner>();
};

TEST(HostMemory, SizeAlignmentAndWritable) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, std::size_t{3} << 20}) {
    auto m = kiln::host_memory::allocate(n);
    ASSERT_TRUE(m.ok()) << m.err().message;
    EXPECT_EQ(m->size(), n);
    EXPECT_EQ(m->span().size(), n);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m->data()) % 64, 0u);
    for (std::size_t i = 0; i < n; ++i) m->data()[i] = static_cast<std::int64_t>(i);
    if (n > 0) {
      EXPECT_EQ(m->data()[n - 1], static_cast<std::int64_t>(n - 1));
    }
  }
}

TEST(HostMemory, MovesTransferOwnership) {
  auto m = kiln::host_memory::allocate(100);
  ASSERT_TRUE(m.ok());
  kiln::host_memory a = std::move(m).value();
  std::int64_t* p = a.data();
  kiln::host_memory b;
  b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.size(), 100u);
}

TEST(HostMemory, AbsurdSizesAreAnErrorNotACrash) {
  auto m = kiln::host_memory::allocate(std::size_t{1} << 50);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.err().code, kiln::errc::out_of_memory);
}

TEST(HostMemory, DefaultSettingsComeFromTheEnvironment) {
  ASSERT_EQ(setenv("KILN_PINNED_LIMIT", "12345", 1), 0);
  ASSERT_EQ(setenv("KILN_HOST_POOL_IDLE_MS", "250", 1), 0);
  auto s = kiln::detail::default_host_pool_settings();
  EXPECT_EQ(s.pinned_limit, 12345u);
  EXPECT_EQ(s.idle, 250ms);
  ASSERT_EQ(setenv("KILN_PINNED_LIMIT", "lots", 1), 0);  // not a number: the default
  ASSERT_EQ(unsetenv("KILN_HOST_POOL_IDLE_MS"), 0);
  s = kiln::detail::default_host_pool_settings();
  EXPECT_GT(s.pinned_limit, 0u);
  EXPECT_LE(s.pinned_limit, std::size_t{8} << 30);
  EXPECT_EQ(s.idle, 2000ms);
  ASSERT_EQ(unsetenv("KILN_PINNED_LIMIT"), 0);
}

// With nothing pinned, freed ordinary blocks are reused (no fresh page faults), for any request
// of the same size class.
TEST_F(HostPool, FreedOrdinaryBlocksAreReused) {
  install(0);
  std::int64_t* first;
  {
    auto m = kiln::host_memory::allocate(1 << 20);
    ASSERT_TRUE(m.ok());
    EXPECT_FALSE(m->pinned());
    first = m->data();
  }
  EXPECT_EQ(host_pool_statistics().cached_bytes, 8 * mib);
  auto again = kiln::host_memory::allocate((1 << 20) - 5);  // same size class
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->data(), first);
  EXPECT_EQ(host_pool_statistics().cached_bytes, 0u);
  EXPECT_EQ(host_pool_statistics().in_use_bytes, 8 * mib);
  EXPECT_EQ(host_pool_statistics().pins, 0u);
}

// A fresh ordinary block of 8 MiB or more comes with every page already mapped (first touched
// on the workers, core/host_memory.cpp): a kept result's first write then faults nothing. 96 MiB
// is above any threshold below which the C library serves blocks from memory it already holds,
// and residency is read at once: only reclaim under memory pressure could undo the touch first.
TEST_F(HostPool, LargeFreshBlocksComeWithTheirPagesMapped) {
  install(0, 60s, 0);  // nothing pinned, nothing cached: every block is fresh
  const long page = sysconf(_SC_PAGE_SIZE);
  ASSERT_GT(page, 0);
  auto resident_pages = [&](const kiln::host_memory& m) {
    const std::size_t bytes = m.size() * sizeof(std::int64_t);
    std::vector<unsigned char> v((bytes + page - 1) / page);
    EXPECT_EQ(mincore(const_cast<std::int64_t*>(m.data()), bytes, v.data()), 0);
    return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return (c & 1) != 0; }));
  };
  for (std::size_t bytes : {8 * mib, 24 * mib, 96 * mib}) {
    auto m = kiln::host_memory::allocate(elements_of(bytes));
    ASSERT_TRUE(m.ok());
    EXPECT_FALSE(m->pinned());
    EXPECT_EQ(resident_pages(*m), bytes / page) << bytes << " bytes";
  }
}

// How many pages of a block are mapped now (mincore).
std::size_t resident_pages(const kiln::host_memory& m) {
  const long page = sysconf(_SC_PAGE_SIZE);
  const std::size_t bytes = m.size() * sizeof(std::int64_t);
  std::vector<unsigned char> v((bytes + page - 1) / page);
  EXPECT_EQ(mincore(const_cast<std::int64_t*>(m.data()), bytes, v.data()), 0);
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return (c & 1) != 0; }));
}

std::size_t pages_of(std::size_t bytes) { return bytes / static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE)); }

// Waits (up to 5 s, looking every 100 us) until the pool thread is preparing a spare of `bytes`.
bool preparing_spare(std::size_t bytes) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (host_pool_statistics().preparing_bytes != bytes && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100us);
  return host_pool_statistics().preparing_bytes == bytes;
}

// A caller keeping its results: the call that takes a fresh block asks for a spare, which the
// pool thread prepares once that call's run has ended, never while it is in flight; the next
// call takes it, whole and mapped, and asks for the next one.
TEST_F(HostPool, SpareBlockIsPreparedAfterTheCallsRun) {
  install(0, 60s, std::size_t{1} << 30, /*spares=*/true);
  auto first = kiln::host_memory::allocate(elements_of(24 * mib));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(host_pool_statistics().pending_spares, 1u);
  {
    kiln::detail::run_scope run;  // the call's run
    std::this_thread::sleep_for(60ms);
    const auto s = host_pool_statistics();
    EXPECT_EQ(s.spares, 0u) << "a spare was prepared beside the run";
    EXPECT_EQ(s.cached_bytes, 0u);
  }
  ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.pending_spares == 0; }));
  auto s = host_pool_statistics();
  EXPECT_EQ(s.spares, 1u);
  EXPECT_EQ(s.spares_cut_short, 0u);
  EXPECT_EQ(s.cached_bytes, 24 * mib);  // the spare, while the first block is still held
  auto second = kiln::host_memory::allocate(elements_of(24 * mib));
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->data(), first->data());
  EXPECT_EQ(resident_pages(*second), pages_of(24 * mib));
  s = host_pool_statistics();
  EXPECT_EQ(s.cached_bytes, 0u) << "the second call did not take the spare";
  EXPECT_EQ(s.in_use_bytes, 48 * mib);
  EXPECT_EQ(s.pending_spares, 1u);  // the next one
  // Blocks below 8 MiB get none: their first touch is cheap.
  auto small = kiln::host_memory::allocate(elements_of(4 * mib));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(host_pool_statistics().pending_spares, 1u);
}

// A caller that drops its results reuses the blocks it gives back: the spare made after its first
// call expires unused and is not made again, however long the caller goes on (calls every 20 ms
// for 3 idle times of 200 ms: each reuses the block it gave back).
TEST_F(HostPool, ADroppingCallerGetsOneSpareOnly) {
  install(0, 200ms, std::size_t{1} << 30, /*spares=*/true);
  const auto until = std::chrono::steady_clock::now() + 600ms;
  int calls = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto m = kiln::host_memory::allocate(elements_of(16 * mib));
    ASSERT_TRUE(m.ok());
    {
      kiln::detail::run_scope run;
    }
    ++calls;
    std::this_thread::sleep_for(20ms);
  }  // each result dropped before the next call
  ASSERT_TRUE(wait_for([](const host_pool_stats& st) { return st.pending_spares == 0; }));
  EXPECT_GT(calls, 5);
  EXPECT_EQ(host_pool_statistics().spares, 1u) << "spares made again for a caller reusing its blocks";
}

// A request made by a call that starts no run is served once it is run_quiet_ms old; one that a
// free block of the class already answers is not made.
TEST_F(HostPool, SpareWithoutARunComesAfterTheQuietTime) {
  install(0, 60s, std::size_t{1} << 30, /*spares=*/true);
  auto first = kiln::host_memory::allocate(elements_of(16 * mib));
  ASSERT_TRUE(first.ok());
  const auto asked = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(host_pool_statistics().spares, 0u) << "prepared before the call's run could begin";
  ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.spares == 1 && s.pending_spares == 0; }));
  EXPECT_GE(std::chrono::steady_clock::now() - asked, 45ms);
  // Given back, the first block joins the spare: two free blocks of the class, and taking one
  // leaves the other, so no spare is asked for.
  first = kiln::host_memory{};
  EXPECT_EQ(host_pool_statistics().cached_bytes, 32 * mib);
  auto again = kiln::host_memory::allocate(elements_of(16 * mib));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(host_pool_statistics().pending_spares, 0u);
  EXPECT_EQ(host_pool_statistics().cached_bytes, 16 * mib);
}

// A run that begins while a spare is being prepared stops it at the pages in hand; the call that
// takes it then gets every page mapped all the same (the rest touched on its path).
TEST_F(HostPool, ARunCutsASpareShortAndItsTakerGetsItWhole) {
  const std::size_t bytes = 256 * mib;  // long enough to prepare that the run begins in the middle
  install(0, 60s, std::size_t{1} << 30, /*spares=*/true);
  auto first = kiln::host_memory::allocate(elements_of(bytes));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(preparing_spare(bytes)) << "the spare's preparation never began";
  {
    kiln::detail::run_scope run;
    ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.preparing_bytes == 0; }));
    const auto s = host_pool_statistics();
    EXPECT_EQ(s.spares, 1u);
    EXPECT_EQ(s.spares_cut_short, 1u);
    EXPECT_EQ(s.cached_bytes, bytes);
    auto second = kiln::host_memory::allocate(elements_of(bytes));
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(host_pool_statistics().cached_bytes, 0u);
    EXPECT_EQ(resident_pages(*second), pages_of(bytes));
    second->data()[second->size() - 1] = 7;
    EXPECT_EQ(second->data()[second->size() - 1], 7);
  }
}

// A spare asked for by one call and not begun when the next call of its class misses is asked
// for again by that call: it then waits for that call's run, not only the earlier one's, so that
// it is never prepared beside the second call's own first touch and run.
TEST_F(HostPool, ASpareNotBegunWaitsForTheNextCallsRun) {
  install(0, 60s, std::size_t{1} << 30, /*spares=*/true);
  auto first = kiln::host_memory::allocate(elements_of(16 * mib));
  ASSERT_TRUE(first.ok());
  std::optional<kiln::detail::run_scope> run;
  run.emplace();  // the first call's run, in flight: its spare waits
  auto second = kiln::host_memory::allocate(elements_of(16 * mib));  // misses: asks again
  ASSERT_TRUE(second.ok());
  const auto asked = std::chrono::steady_clock::now();
  run.reset();  // the first call's run ends before the second call's begins
  std::this_thread::sleep_for(10ms);
  const auto s = host_pool_statistics();
  // Beyond run_quiet_ms after the request the spare is due anyway; a slower machine says nothing.
  if (std::chrono::steady_clock::now() - asked < 40ms) {
    EXPECT_EQ(s.spares, 0u) << "the spare was prepared between the first call's run and the second's";
    EXPECT_EQ(s.pending_spares, 1u);
  }
  run.emplace();
  run.reset();  // the second call's run
  ASSERT_TRUE(wait_for([](const host_pool_stats& st) { return st.spares == 1 && st.pending_spares == 0; }));
}

// A call that wants the class of the spare in preparation takes that spare (its preparation
// stopped at the pages in hand, or finished), not a fresh block, and asks for the next one.
TEST_F(HostPool, ACallTakesTheSpareInPreparation) {
  const std::size_t bytes = 256 * mib;
  install(0, 60s, std::size_t{1} << 30, /*spares=*/true);
  auto first = kiln::host_memory::allocate(elements_of(bytes));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(preparing_spare(bytes)) << "the spare's preparation never began";
  auto second = kiln::host_memory::allocate(elements_of(bytes));
  ASSERT_TRUE(second.ok());
  const auto s = host_pool_statistics();
  EXPECT_EQ(s.preparing_bytes, 0u) << "the call did not wait for the spare";
  EXPECT_EQ(s.spares, 1u);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.pending_spares, 1u);  // the next one, not yet due
  EXPECT_EQ(resident_pages(*second), pages_of(bytes));
}

// Spares count against the ordinary cache's bound: one is asked for only where the cache has
// room for it beside what it holds.
TEST_F(HostPool, SparesStayWithinTheOrdinaryCacheBound) {
  install(0, 60s, 16 * mib, /*spares=*/true);
  {
    auto held = kiln::host_memory::allocate(elements_of(6 * mib));  // below 8 MiB: no spare
    ASSERT_TRUE(held.ok());
  }
  EXPECT_EQ(host_pool_statistics().cached_bytes, 6 * mib);
  auto big = kiln::host_memory::allocate(elements_of(24 * mib));  // larger than the whole bound
  ASSERT_TRUE(big.ok());
  auto full = kiln::host_memory::allocate(elements_of(12 * mib));  // 6 + 12 > 16
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(host_pool_statistics().pending_spares, 0u);
  auto fits = kiln::host_memory::allocate(elements_of(10 * mib));  // 6 + 10 = 16
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(host_pool_statistics().pending_spares, 1u);
  ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.spares == 1 && s.pending_spares == 0; }));
  EXPECT_EQ(host_pool_statistics().cached_bytes, 16 * mib);
}

// With the pool's own pinning (through the CUDA backend), blocks are pinned in the background only
// once CUDA has been started, by a probe with a usable device: a process that never uses CUDA
// (the cpu backend on a GPU host) starts no CUDA context for pinned blocks it cannot use.
class HostPoolPinning : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_TRUE(kiln::detail::set_host_pool_settings(kiln::detail::default_host_pool_settings()));
  }
};

TEST_F(HostPoolPinning, NoBackgroundPinBeforeCudaIsStarted) {
  auto s = kiln::detail::default_host_pool_settings();
  s.spares = false;
  ASSERT_TRUE(kiln::detail::set_host_pool_settings(s));
  kiln::detail::backend& cuda = kiln::detail::backend_of(kiln::backend_kind::cuda);
  const bool started_before = cuda.started();
  {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(host_pool_statistics().pending_pins + host_pool_statistics().pins, started_before ? 1u : 0u);
  }
  ASSERT_TRUE(pins_settled());
  (void)kiln::devices();  // probes every backend, CUDA included
  bool usable = false;
  for (const auto& d : kiln::devices()) usable = usable || (d.backend == kiln::backend_kind::cuda && d.available);
  EXPECT_EQ(cuda.started(), usable);
  ASSERT_TRUE(kiln::detail::set_host_pool_settings(s));  // counters and cache cleared
  {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(host_pool_statistics().pending_pins + host_pool_statistics().pins, usable ? 1u : 0u);
  }
  ASSERT_TRUE(pins_settled());
}

// allocate() never pins on the caller's thread, first call included: with a pin costing 100 ms,
// a miss returns ordinary memory at once and the pool thread pins a block for the next call.
// Once the bound is reached, calls keep getting ordinary memory at once, and nothing is queued.
TEST_F(HostPool, SpentPoolGivesOrdinaryMemoryAtOnce) {
  install(4 * mib);
  fake_->delay_ms = 100;
  auto timed = [] {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_TRUE(m.ok());
    EXPECT_LT(took, 50ms) << "allocate() waited for a pin";
    return std::move(m).value();
  };
  auto first = timed();
  EXPECT_FALSE(first.pinned());
  EXPECT_EQ(host_pool_statistics().pending_pins, 1u);
  ASSERT_TRUE(pins_settled());
  auto second = timed();
  EXPECT_TRUE(second.pinned());
  EXPECT_TRUE(fake_->holds(second.data()));
  // The bound (one block) is reached while `second` is held.
  std::vector<kiln::host_memory> kept;
  for (int i = 0; i < 4; ++i) {
    kept.push_back(timed());
    EXPECT_FALSE(kept.back().pinned());
    EXPECT_EQ(host_pool_statistics().pending_pins, 0u);
  }
  const auto s = host_pool_statistics();
  EXPECT_EQ(s.pins, 1u);
  EXPECT_EQ(s.background_pins, 1u);
  EXPECT_EQ(s.pinned_bytes, 4 * mib);
}

// A loop that drops its results converges to one pinned block, reused by every later call.
TEST_F(HostPool, BackgroundRefillMakesLaterCallsPinned) {
  install(64 * mib);
  fake_->delay_ms = 20;
  std::vector<bool> pinned;
  std::int64_t* block = nullptr;
  for (int i = 0; i < 6; ++i) {
    auto m = kiln::host_memory::allocate(elements_of(6 * mib));
    ASSERT_TRUE(m.ok());
    pinned.push_back(m->pinned());
    if (m->pinned()) {
      if (!block) block = m->data();
      EXPECT_EQ(m->data(), block) << "call " << i << " got another pinned block";
    }
    ASSERT_TRUE(pins_settled());  // what a call's own run time would give the thread
  }
  EXPECT_EQ(pinned, (std::vector<bool>{false, true, true, true, true, true}));
  EXPECT_EQ(host_pool_statistics().pins, 1u);
  EXPECT_EQ(host_pool_statistics().pinned_bytes, 6 * mib);
}

// No block is pinned beside a GPU run (a pin would stall its copies): the request waits until
// the run has ended and the GPUs have rested run_quiet_ms.
TEST_F(HostPool, NoBackgroundPinBesideAGpuRun) {
  install(64 * mib);
  std::optional<kiln::detail::run_scope> run;
  run.emplace();
  auto first = kiln::host_memory::allocate(elements_of(6 * mib));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->pinned());
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * kiln::detail::run_quiet_ms));
  EXPECT_EQ(host_pool_statistics().pins, 0u) << "a block was pinned during the run";
  EXPECT_EQ(host_pool_statistics().pending_pins, 1u);
  const auto ended = std::chrono::steady_clock::now();
  run.reset();
  ASSERT_TRUE(pins_settled());
  EXPECT_GE(std::chrono::steady_clock::now() - ended, std::chrono::milliseconds(kiln::detail::run_quiet_ms));
  EXPECT_EQ(host_pool_statistics().pins, 1u);
  auto second = kiln::host_memory::allocate(elements_of(6 * mib));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->pinned());
}

// Nor beside a host run over arrays of pooled size (a pin stalls its first touches): a `cpu`
// map of 2^20 elements runs on another thread while a block's pin is requested; the pin waits
// for the run's end.
TEST_F(HostPool, NoBackgroundPinBesideALargeHostRun) {
  install(64 * mib);
  std::vector<std::int64_t> in(std::size_t{1} << 20), out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::int64_t>(i);
  std::stop_source stop;
  kiln::run_options o;
  o.backend = "cpu";
  o.stop = stop.get_token();
  std::atomic<bool> running{true};
  std::thread run([&] {
    // 2^40 steps: it runs until stopped below.
    auto r = kiln::logistic_map(in, out, {6700417, 22, std::int64_t{1} << 20}, o);
    EXPECT_FALSE(r.ok());
    if (!r.ok()) {
      EXPECT_EQ(r.err().code, kiln::errc::cancelled);
    }
    running = false;
  });
  // Time for the thread to be well inside its run (it runs until stopped).
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * kiln::detail::run_quiet_ms));
  auto first = kiln::host_memory::allocate(elements_of(6 * mib));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->pinned());
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * kiln::detail::run_quiet_ms));
  const bool was_running = running.load();
  const auto pins_during = host_pool_statistics().pins;
  stop.request_stop();
  run.join();
  ASSERT_TRUE(was_running) << "the run ended before the check: it proves nothing";
  EXPECT_EQ(pins_during, 0u) << "a block was pinned during the run";
  ASSERT_TRUE(pins_settled());
  EXPECT_EQ(host_pool_statistics().pins, 1u);
}

// A freed pinned block goes back to the cache and the next call of its class gets it again,
// before any ordinary block of that class.
TEST_F(HostPool, FreedPinnedBlockIsReused) {
  install(64 * mib);
  auto ordinary = kiln::host_memory::allocate(elements_of(4 * mib));
  ASSERT_TRUE(ordinary.ok());
  ASSERT_TRUE(pins_settled());
  std::int64_t* p;
  {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(m->pinned());
    p = m->data();
  }
  ordinary = kiln::host_memory{};  // now an ordinary block of the class is cached too
  EXPECT_EQ(host_pool_statistics().cached_bytes, 8 * mib);
  for (int i = 0; i < 3; ++i) {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib) - 100);
    ASSERT_TRUE(m.ok());
    EXPECT_TRUE(m->pinned());
    EXPECT_EQ(m->data(), p);
  }
  EXPECT_EQ(host_pool_statistics().pins, 1u);
}

// Results kept alive: each miss queues at most one pin of its class, and the pinned total never
// passes the bound, whatever the number of blocks held.
TEST_F(HostPool, PinnedTotalNeverExceedsTheBound) {
  const std::size_t limit = 3 * 4 * mib;
  install(limit);
  std::vector<kiln::host_memory> kept;
  for (int i = 0; i < 16; ++i) {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(m.ok());
    kept.push_back(std::move(m).value());
    ASSERT_TRUE(pins_settled());
    EXPECT_LE(host_pool_statistics().pinned_bytes, limit);
  }
  const auto pinned = std::count_if(kept.begin(), kept.end(), [](const auto& m) { return m.pinned(); });
  EXPECT_EQ(pinned, 3);
  EXPECT_EQ(fake_->peak_bytes, limit);
  EXPECT_EQ(host_pool_statistics().in_use_bytes, 16 * 4 * mib);
  EXPECT_EQ(host_pool_statistics().pinned_bytes, limit);
}

// allocate_pinned pins on the caller's thread (counted as a pin, not a background one), within
// the bound, and gives ordinary memory beyond it.
TEST_F(HostPool, AllocatePinnedPinsNowWithinTheBound) {
  install(4 * mib);
  auto a = kiln::host_memory::allocate_pinned(elements_of(4 * mib));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->pinned());
  auto b = kiln::host_memory::allocate_pinned(elements_of(4 * mib));
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->pinned());
  const auto s = host_pool_statistics();
  EXPECT_EQ(s.pins, 1u);
  EXPECT_EQ(s.background_pins, 0u);
  EXPECT_EQ(s.pinned_bytes, 4 * mib);
}

// Where nothing can be pinned (no usable device), calls get ordinary memory and the failed pin
// is not retried on every call.
TEST_F(HostPool, FailedPinsFallBackToOrdinaryMemory) {
  install(64 * mib);
  fake_->fail = true;
  for (int i = 0; i < 3; ++i) {
    auto m = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(m.ok());
    EXPECT_FALSE(m->pinned());
    ASSERT_TRUE(pins_settled());
  }
  EXPECT_EQ(fake_->attempts.load(), 1);
  EXPECT_EQ(host_pool_statistics().pins, 0u);
  EXPECT_EQ(host_pool_statistics().pinned_bytes, 0u);
}

// Cached blocks, pinned and ordinary, are released once unused for the idle time, not before.
TEST_F(HostPool, IdleBlocksAreReleased) {
  install(64 * mib, 300ms);
  {
    auto ordinary = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(ordinary.ok());
    ASSERT_TRUE(pins_settled());
    auto pinned = kiln::host_memory::allocate(elements_of(4 * mib));
    ASSERT_TRUE(pinned.ok());
    ASSERT_TRUE(pinned->pinned());
  }
  const auto freed = std::chrono::steady_clock::now();
  EXPECT_EQ(host_pool_statistics().cached_bytes, 8 * mib);
  EXPECT_EQ(fake_->held(), 4 * mib);
  ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.cached_bytes == 0 && s.pinned_bytes == 0; }));
  EXPECT_GE(std::chrono::steady_clock::now() - freed, 290ms) << "released before the idle time";
  EXPECT_EQ(fake_->held(), 0u);
  // Used again after the release: pinned again in the background.
  auto m = kiln::host_memory::allocate(elements_of(4 * mib));
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->pinned());
  ASSERT_TRUE(pins_settled());
  EXPECT_EQ(fake_->held(), 4 * mib);
}

// A block in use is never released, and one given back restarts its idle time.
TEST_F(HostPool, BlocksInUseAreKept) {
  install(0, 100ms);
  auto m = kiln::host_memory::allocate(elements_of(4 * mib));
  ASSERT_TRUE(m.ok());
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(host_pool_statistics().in_use_bytes, 4 * mib);
  m->data()[0] = 1;  // still ours
  m = kiln::host_memory{};
  EXPECT_EQ(host_pool_statistics().cached_bytes, 4 * mib);
  ASSERT_TRUE(wait_for([](const host_pool_stats& s) { return s.cached_bytes == 0; }));
}

// Ordinary blocks are cached up to their own bound; beyond it they go back to the system.
TEST_F(HostPool, OrdinaryCacheIsBounded) {
  install(0, 60s, 8 * mib);
  {
    std::vector<kiln::host_memory> held;
    for (int i = 0; i < 4; ++i) {
      auto m = kiln::host_memory::allocate(elements_of(4 * mib));
      ASSERT_TRUE(m.ok());
      held.push_back(std::move(m).value());
    }
  }
  EXPECT_EQ(host_pool_statistics().cached_bytes, 8 * mib);
  EXPECT_EQ(host_pool_statistics().in_use_bytes, 0u);
}

// Several threads allocating, writing, holding and freeing blocks of a few classes at once: no
// block is handed out twice, the bound holds throughout, and everything adds up at the end.
TEST_F(HostPool, ConcurrentAllocateAndFree) {
  const std::size_t limit = 24 * mib;
  install(limit, 20ms);
  fake_->delay_ms = 2;
  std::mutex m;
  std::set<std::int64_t*> out;  // blocks handed out now
  std::atomic<bool> failed{false};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (host_pool_statistics().pinned_bytes > limit) failed = true;
      std::this_thread::sleep_for(100us);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<kiln::host_memory> held;
      for (int i = 0; i < 300; ++i) {
        const std::size_t bytes = (2 + 2 * (rng() % 3)) * mib;
        auto r = kiln::host_memory::allocate(elements_of(bytes) - rng() % 1000);
        if (!r.ok()) {
          failed = true;
          return;
        }
        kiln::host_memory b = std::move(r).value();
        {
          std::lock_guard<std::mutex> lock(m);
          if (!out.insert(b.data()).second) failed = true;
        }
        b.data()[0] = t;
        b.data()[b.size() - 1] = i;
        held.push_back(std::move(b));
        if (held.size() > 3 || rng() % 2) {
          const std::size_t k = rng() % held.size();
          if (held[k].data()[0] != t) failed = true;
          {
            std::lock_guard<std::mutex> lock(m);
            out.erase(held[k].data());
          }
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
        }
      }
      std::lock_guard<std::mutex> lock(m);
      for (auto& b : held) out.erase(b.data());
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  watcher.join();
  EXPECT_FALSE(failed.load());
  ASSERT_TRUE(pins_settled());
  const auto s = host_pool_statistics();
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_LE(s.pinned_bytes, limit);
  EXPECT_LE(fake_->peak_bytes, limit);
  EXPECT_EQ(s.pins, s.background_pins);
  EXPECT_GT(s.background_pins, 0u);
  // Idle, everything goes.
  ASSERT_TRUE(wait_for([](const host_pool_stats& st) { return st.cached_bytes == 0 && st.pinned_bytes == 0; }));
  EXPECT_EQ(fake_->held(), 0u);
}

}  // namespace
