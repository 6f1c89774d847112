// Tests of the lanes' shared parts with a scripted device: the work counter, the lane loop and the host's share.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/lanes.hpp"
#include "kiln/kiln.hpp"

namespace {

using kiln::detail::work_counter;
using kiln::detail::work_range;
using i64 = std::int64_t;

// Which of n elements the ranges covered, and how often.
std::vector<int> coverage(std::size_t n, const std::vector<work_range>& ranges) {
  std::vector<int> seen(n, 0);
  for (const auto& r : ranges)
    for (std::size_t i = r.begin; i < r.begin + r.count; ++i) ++seen[i];
  return seen;
}

TEST(WorkCounter, HandsOutEveryElementOnceInOrderWithinSegments) {
  work_counter w(100, 30);
  std::vector<work_range> got;
  const std::size_t sizes[] = {7, 50, 3, 30, 30, 30, 30};
  for (std::size_t s : sizes)
    if (auto r = w.take(s)) got.push_back(*r);
  // 0-7, 7-30 (cut at the segment), 30-33, 33-60, 60-90, 90-100; then nothing.
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[1].begin, 7u);
  EXPECT_EQ(got[1].count, 23u);
  EXPECT_EQ(got[3].begin, 33u);
  EXPECT_EQ(got[3].count, 27u);
  EXPECT_EQ(got[5].begin, 90u);
  EXPECT_EQ(got[5].count, 10u);
  EXPECT_FALSE(w.take(1));
  EXPECT_EQ(w.ranges(), 6u);
  for (const auto& r : got) EXPECT_EQ(r.begin / 30, (r.begin + r.count - 1) / 30) << "straddles at " << r.begin;
  EXPECT_EQ(coverage(100, got), std::vector<int>(100, 1));
}

TEST(WorkCounter, ThreadsTakingAtOnceCoverEverythingOnce) {
  const std::size_t n = 1'000'003;
  work_counter w(n, n);
  std::vector<std::vector<work_range>> per_thread(8);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < per_thread.size(); ++t)
    threads.emplace_back([&, t] {
      std::size_t size = 1 + t * 37;
      while (auto r = w.take(size)) {
        per_thread[t].push_back(*r);
        size = size * 7 % 1000 + 1;
      }
    });
  for (auto& th : threads) th.join();
  std::vector<work_range> all;
  for (const auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  EXPECT_EQ(coverage(n, all), std::vector<int>(n, 1));
  EXPECT_EQ(w.ranges(), all.size());
}

// A device whose chunks complete only when `complete_after` queries of them have returned false;
// it records what it was asked to do. Its clock (the lane's, lane_now) moves 1 us a query and
// stands still otherwise.
struct scripted_ops {
  std::chrono::steady_clock::time_point t{};
  std::chrono::steady_clock::time_point now() const { return t; }
  void pause() {}
  std::size_t slot_count = 3, chunk_elements = 10;
  int complete_after = 0;  // done() answers false this many times per chunk, then true
  bool fail_done = false;  // done() returns an error
  std::vector<bool> busy_flags = std::vector<bool>(3, false);
  std::vector<int> queries = std::vector<int>(3, 0);
  std::vector<work_range> in_slot = std::vector<work_range>(3);
  std::vector<work_range> started, finished, on_host;
  bool finish_while_idle = false;  // finish() called on a slot that held nothing

  std::size_t slots() const { return slot_count; }
  std::size_t chunk() const { return chunk_elements; }
  bool busy(std::size_t k) const { return busy_flags[k]; }
  kiln::result<bool> done(std::size_t k) {
    if (fail_done) return kiln::make_error(kiln::errc::device_error, "scripted failure");
    t += std::chrono::microseconds(1);
    return queries[k]++ >= complete_after;
  }
  kiln::status finish(std::size_t k) {
    if (!busy_flags[k]) finish_while_idle = true;
    finished.push_back(in_slot[k]);
    busy_flags[k] = false;
    return {};
  }
  kiln::status start(std::size_t k, work_range r) {
    if (busy_flags[k]) return kiln::make_error(kiln::errc::device_error, "slot reused while busy");
    started.push_back(r);
    in_slot[k] = r;
    busy_flags[k] = true;
    queries[k] = 0;
    return {};
  }
  void compute_on_host(work_range r) { on_host.push_back(r); }
};

TEST(MapJob, OnlyJobsOfAtLeastMinSharedElementsAreShared) {
  std::vector<std::int64_t> in(kiln::detail::min_shared_elements), out(in.size());
  const kiln::detail::kernel_params kp = kiln::detail::prepare({61, 22, 10});
  kiln::run_options o;
  o.host_share = true;
  kiln::detail::map_job job;
  job.set_map(in, out, kp, o);
  EXPECT_TRUE(job.shared_with_host());
  job.set_map(std::span<const std::int64_t>(in).first(in.size() - 1), out, kp, o);
  EXPECT_FALSE(job.shared_with_host()) << "one element fewer than min_shared_elements";
  o.host_share = false;
  job.set_map(in, out, kp, o);
  EXPECT_FALSE(job.shared_with_host()) << "host_share off";
}

// Beyond 10 iterations the floor grows with them: at 100, ten times 2^20 elements.
TEST(MapJob, TheFloorGrowsWithTheIterationsBeyondTen) {
  using kiln::detail::min_shared_elements;
  using kiln::detail::min_shared_elements_at;
  EXPECT_EQ(min_shared_elements_at(1), min_shared_elements);
  EXPECT_EQ(min_shared_elements_at(10), min_shared_elements);
  EXPECT_EQ(min_shared_elements_at(11), min_shared_elements * 11 / 10);
  EXPECT_EQ(min_shared_elements_at(100), min_shared_elements * 10);
  EXPECT_EQ(min_shared_elements_at(1000), min_shared_elements * 100);
  EXPECT_EQ(min_shared_elements_at(std::int64_t{1} << 62), min_shared_elements_at(std::int64_t{1} << 30))
      << "capped, no overflow";
  std::vector<std::int64_t> in(min_shared_elements * 10), out(in.size());
  kiln::run_options o;
  o.host_share = true;
  kiln::detail::map_job job;
  const kiln::detail::kernel_params k100 = kiln::detail::prepare({61, 22, 100});
  job.set_map(in, out, k100, o);
  EXPECT_TRUE(job.shared_with_host());
  job.set_map(std::span<const std::int64_t>(in).first(in.size() - 1), out, k100, o);
  EXPECT_FALSE(job.shared_with_host()) << "one element fewer than the floor at 100 iterations";
  const kiln::detail::kernel_params k101 = kiln::detail::prepare({61, 22, 101});
  job.set_map(in, out, k101, o);
  EXPECT_FALSE(job.shared_with_host()) << "the floor at 101 iterations is above 10 * 2^20";
}

TEST(FeedLane, WithoutSharingEveryChunkGoesToTheDeviceAndIsFinished) {
  scripted_ops ops;
  ops.complete_after = 1000;  // never done when asked: without sharing it is never asked
  work_counter w(95, 95);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, false, failed).ok());
  EXPECT_TRUE(ops.on_host.empty());
  EXPECT_EQ(ops.started.size(), 10u);  // 9 of 10 and one of 5
  EXPECT_EQ(ops.finished.size(), ops.started.size());
  EXPECT_FALSE(ops.finish_while_idle);
  EXPECT_EQ(coverage(95, ops.started), std::vector<int>(95, 1));
  EXPECT_EQ(w.host_elements(), 0u);
}

TEST(FeedLane, ABusyDeviceLeavesTheRestToTheHost) {
  scripted_ops ops;
  ops.complete_after = 1000;  // the device never finishes while the lane has work
  work_counter w(1000, 1000);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, true, failed).ok());
  // Three chunks fill the slots. No chunk has been timed, so the lane waits out each of them
  // (1000 queries), then a fourth to a sixth take their places; by then a chunk runs 3000 us
  // by the scripted clock and host pieces take none, so the host computes everything else.
  EXPECT_EQ(ops.started.size(), 6u);
  EXPECT_EQ(ops.finished.size(), 6u);
  std::vector<work_range> all = ops.started;
  all.insert(all.end(), ops.on_host.begin(), ops.on_host.end());
  EXPECT_EQ(coverage(1000, all), std::vector<int>(1000, 1));
  std::size_t host = 0;
  for (const auto& r : ops.on_host) host += r.count;
  EXPECT_EQ(w.host_elements(), host);
  EXPECT_EQ(host, 940u);
}

TEST(FeedLane, ADeviceThatKeepsUpGetsEveryChunk) {
  scripted_ops ops;
  ops.complete_after = 0;  // done whenever asked
  work_counter w(1000, 1000);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, true, failed).ok());
  EXPECT_TRUE(ops.on_host.empty());
  EXPECT_EQ(coverage(1000, ops.started), std::vector<int>(1000, 1));
  EXPECT_EQ(ops.finished.size(), 100u);
}

TEST(FeedLane, SharingInterleavesWhenTheDeviceIsSlowerThanTheHost) {
  scripted_ops ops;
  ops.complete_after = 2;  // each chunk is still running at its first two checks
  work_counter w(10'000, 10'000);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, true, failed).ok());
  EXPECT_FALSE(ops.on_host.empty());
  EXPECT_GT(ops.started.size(), 3u);
  std::vector<work_range> all = ops.started;
  all.insert(all.end(), ops.on_host.begin(), ops.on_host.end());
  EXPECT_EQ(coverage(10'000, all), std::vector<int>(10'000, 1));
  EXPECT_EQ(ops.finished.size(), ops.started.size());
  EXPECT_FALSE(ops.finish_while_idle);
}

// A host piece fits in what is left of the oldest chunk's expected run: none until a chunk has
// been timed, whole pieces until a piece has, then as many elements as fit, none below
// min_piece. A completion noticed late lowers the estimate but never raises it; one timed as it
// happened replaces it.
TEST(SharePacing, PiecesFitBeforeTheOldestChunkCompletes) {
  using kiln::detail::share_pacing;
  using std::chrono::microseconds;
  share_pacing p;
  EXPECT_EQ(p.piece_before(microseconds(0), 5000), 0u) << "no chunk timed yet: wait and time one";
  p.chunk_noticed(microseconds(800));
  EXPECT_EQ(p.piece_before(microseconds(0), 5000), 0u) << "a late notice alone is no estimate";
  p.chunk_timed(microseconds(1000));
  EXPECT_EQ(p.piece_before(microseconds(900), 5000), 5000u) << "no piece timed yet";
  EXPECT_EQ(p.piece_before(microseconds(1100), 5000), 0u) << "no piece timed yet, but past the expected run";
  p.piece_done(microseconds(100), 10'000);  // 10 ns an element
  EXPECT_EQ(p.piece_before(microseconds(0), 500'000), 100'000u);  // 1 ms left
  EXPECT_EQ(p.piece_before(microseconds(400), 500'000), 60'000u);
  EXPECT_EQ(p.piece_before(microseconds(400), 5000), 5000u) << "at most the lane's piece";
  EXPECT_EQ(p.piece_before(microseconds(998), 5000), 0u) << "200 elements fit, fewer than min_piece";
  EXPECT_EQ(p.piece_before(microseconds(1500), 5000), 0u) << "past the expected run";
  p.chunk_noticed(microseconds(3000));
  EXPECT_EQ(p.piece_before(microseconds(0), 500'000), 100'000u) << "a late notice does not raise it";
  p.chunk_noticed(microseconds(500));
  EXPECT_EQ(p.piece_before(microseconds(0), 500'000), 50'000u) << "but lowers it";
  p.chunk_timed(microseconds(2000));
  EXPECT_EQ(p.piece_before(microseconds(0), 500'000), 200'000u) << "a timed chunk replaces it";
  p.piece_done(microseconds(100), 1000);  // a slower host: the last piece's rate counts
  EXPECT_EQ(p.piece_before(microseconds(0), 500'000), 20'000u);
  // A host so slow that no piece fits: of every probe_every such looks, the last gets min_piece.
  share_pacing q;
  q.chunk_timed(microseconds(2000));
  q.piece_done(microseconds(1000), 10);  // 100 us an element: 20 fit in 2 ms
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < share_pacing::probe_every; ++i) EXPECT_EQ(q.piece_before(microseconds(0), 5000), 0u) << i;
    EXPECT_EQ(q.piece_before(microseconds(0), 5000), share_pacing::min_piece) << "round " << round;
  }
  for (int i = 0; i < 2 * share_pacing::probe_every; ++i)
    EXPECT_EQ(q.piece_before(microseconds(2500), 5000), 0u) << "past the run, no probe";
}

// A device whose chunks complete 300 us after they start and a host that takes 2 us an element,
// on a scripted clock (1 us a query, finish() waits out the chunk, a piece takes its time): a
// whole piece of 1000 elements (2 ms) outlasts a chunk's run. The lane waits to time its first
// chunk, computes one whole piece (the host's rate not yet known), then only the rare probes: a
// piece of min_piece elements takes 512 us, longer than what is left of any chunk's run, so the
// device takes the rest, where whole pieces at every check would have left most of it to the host.
struct timed_ops {
  using clock = std::chrono::steady_clock;
  clock::time_point t{};
  std::size_t slot_count = 3, chunk_elements = 1000;
  clock::duration chunk_run = std::chrono::microseconds(300);
  clock::duration per_element = std::chrono::microseconds(2);
  std::vector<clock::time_point> ends = std::vector<clock::time_point>(3);
  std::vector<bool> busy_flags = std::vector<bool>(3, false);
  std::size_t on_device = 0, on_host = 0;

  clock::time_point now() const { return t; }
  void pause() {}
  std::size_t slots() const { return slot_count; }
  std::size_t chunk() const { return chunk_elements; }
  bool busy(std::size_t k) const { return busy_flags[k]; }
  kiln::result<bool> done(std::size_t k) {
    t += std::chrono::microseconds(1);
    return t >= ends[k];
  }
  kiln::status finish(std::size_t k) {
    t = std::max(t, ends[k]);
    busy_flags[k] = false;
    return {};
  }
  kiln::status start(std::size_t k, work_range r) {
    ends[k] = t + chunk_run;
    busy_flags[k] = true;
    on_device += r.count;
    return {};
  }
  void compute_on_host(work_range r) {
    t += per_element * static_cast<long>(r.count);
    on_host += r.count;
  }
};

TEST(FeedLane, AHostSlowerThanTheDeviceStopsTakingPieces) {
  timed_ops ops;
  work_counter w(200'000, 200'000);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, true, failed, 1000).ok());
  EXPECT_EQ(ops.on_device + ops.on_host, 200'000u);
  // One whole piece, then only the probes: min_piece elements at one look in probe_every of those
  // where no piece fits (at most one such look per chunk).
  using kiln::detail::share_pacing;
  const std::size_t chunks = ops.on_device / 1000;
  EXPECT_GT(ops.on_host, 1000u) << "the host's rate is looked at again";
  EXPECT_LE(ops.on_host, 1000 + share_pacing::min_piece * (chunks / share_pacing::probe_every + 1))
      << "host " << ops.on_host << ", device " << ops.on_device;
  EXPECT_EQ(w.host_elements(), ops.on_host);
}

// The same device with a host four times as fast as in the last test (0.5 us an element): pieces
// of what fits in the rest of a chunk's run, so the host keeps a share without delaying a chunk.
TEST(FeedLane, AFasterHostTakesPiecesThatFitTheChunksRun) {
  timed_ops ops;
  ops.per_element = std::chrono::nanoseconds(500);
  work_counter w(200'000, 200'000);
  std::atomic<bool> failed{false};
  ASSERT_TRUE(kiln::detail::feed_lane(ops, w, true, failed, 1000).ok());
  EXPECT_EQ(ops.on_device + ops.on_host, 200'000u);
  EXPECT_GT(ops.on_host, 20'000u) << "device " << ops.on_device;
  EXPECT_GT(ops.on_device, 20'000u) << "host " << ops.on_host;
}

TEST(FeedLane, AFailedQueryIsReturnedAndAnotherLanesFailureStopsTheLane) {
  scripted_ops ops;
  ops.fail_done = true;
  work_counter w(1000, 1000);
  std::atomic<bool> failed{false};
  auto st = kiln::detail::feed_lane(ops, w, true, failed);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("scripted failure"), std::string::npos);

  scripted_ops other;
  work_counter w2(1000, 1000);
  failed = true;
  ASSERT_TRUE(kiln::detail::feed_lane(other, w2, true, failed).ok());
  EXPECT_TRUE(other.started.empty());
  EXPECT_TRUE(other.on_host.empty());
}

TEST(HostShare, HostWorkersAndMapOnHostMatchTheReference) {
  const kiln::map_params prm{6700417, -22, 10};
  const auto kp = kiln::detail::prepare(prm);
  const std::size_t n = 3 * kiln::detail::host_piece + 12345;
  std::vector<i64> in(n), out(n, 0);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<i64>(i * 2654435761u) - (i64{1} << 40);
  work_counter w(n, n);
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t)
    workers.emplace_back([&] { kiln::detail::host_worker(w, in.data(), out.data(), kp, true, failed); });
  for (auto& th : workers) th.join();
  EXPECT_EQ(w.host_elements(), n);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], kiln::logistic_map_reference(in[i], prm)) << "at " << i;
  // Non-temporal stores from every misalignment of the output (the head before the first
  // vector-aligned element goes the ordinary way), and sizes around a vector.
  std::vector<i64> big(4200, 0);
  for (std::size_t offset = 0; offset < 9; ++offset)
    for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{17}, std::size_t{4100}}) {
      std::fill(big.begin(), big.end(), -7);
      kiln::detail::map_on_host(in.data(), big.data() + offset, len, kp, true);
      for (std::size_t i = 0; i < big.size(); ++i) {
        const i64 want = i >= offset && i < offset + len ? kiln::logistic_map_reference(in[i - offset], prm) : -7;
        ASSERT_EQ(big[i], want) << "offset " << offset << ", length " << len << ", at " << i;
      }
    }
  // No iterations: the input unchanged, in place or not.
  auto kp0 = kiln::detail::prepare({61, 22, 0});
  std::vector<i64> copy(5, 0), same = {1, -2, 3, -4, 5};
  kiln::detail::map_on_host(same.data(), copy.data(), 5, kp0);
  EXPECT_EQ(copy, same);
  kiln::detail::map_on_host(same.data(), same.data(), 5, kp0);
  EXPECT_EQ(same, (std::vector<i64>{1, -2, 3, -4, 5}));
}

}  // namespace

// ---- driven_pipeline ------------------------------------------------------------------------------

namespace driven {

i64 f(i64 x) { return x * 3 + 1; }

// A device with `slots` slots whose chunks complete after `polls_needed` polls; it checks that no
// two threads ever touch one slot at once, and can fail a given submit or poll.
struct scripted_device {
  std::size_t slot_count = 6, chunk = 100;
  int polls_needed = 2;
  int fail_submit_at = -1;  // the n-th submit (0-based) fails
  int fail_poll_at = -1;    // the n-th completed poll fails
  const std::vector<i64>* in = nullptr;
  std::vector<i64>* out = nullptr;

  std::vector<std::vector<i64>> in_staging, out_staging;
  std::unique_ptr<std::atomic<bool>[]> touching;
  std::vector<int> polls;
  std::atomic<bool> overlap{false};
  std::atomic<int> submits{0}, completions{0}, abandoned{0}, staged{0}, drained{0};

  void init() {
    in_staging.assign(slot_count, std::vector<i64>(chunk));
    out_staging.assign(slot_count, std::vector<i64>(chunk));
    touching.reset(new std::atomic<bool>[slot_count]);
    for (std::size_t i = 0; i < slot_count; ++i) touching[i] = false;
    polls.assign(slot_count, 0);
  }
  struct touch {
    scripted_device& d;
    std::size_t i;
    touch(scripted_device& d_, std::size_t i_) : d(d_), i(i_) {
      if (d.touching[i].exchange(true)) d.overlap = true;
    }
    ~touch() { d.touching[i] = false; }
  };

  std::size_t slots() const { return slot_count; }
  void stage(std::size_t i, work_range r) {
    touch t(*this, i);
    std::copy(in->begin() + r.begin, in->begin() + r.begin + r.count, in_staging[i].begin());
    ++staged;
  }
  kiln::status submit(std::size_t i, work_range) {
    touch t(*this, i);
    if (submits++ == fail_submit_at) return kiln::make_error(kiln::errc::device_error, "scripted submit failure");
    polls[i] = 0;
    return {};
  }
  kiln::result<bool> poll(std::size_t i) {
    touch t(*this, i);
    if (++polls[i] < polls_needed) return false;
    if (completions++ == fail_poll_at) return kiln::make_error(kiln::errc::device_error, "scripted poll failure");
    for (std::size_t j = 0; j < chunk; ++j) out_staging[i][j] = f(in_staging[i][j]);
    return true;
  }
  void abandon(std::size_t i) {
    touch t(*this, i);
    ++abandoned;
  }
  void drain(std::size_t i, work_range r) {
    touch t(*this, i);
    std::copy(out_staging[i].begin(), out_staging[i].begin() + r.count, out->begin() + r.begin);
    ++drained;
  }
  void compute_on_host(work_range r) {
    for (std::size_t j = r.begin; j < r.begin + r.count; ++j) (*out)[j] = f((*in)[j]);
  }
  template <class F>
  kiln::status in_driver_context(F&& body) {
    ++driver_runs;
    if (fail_context) {
      // Fails once copiers are busy (every slot staged), or after a while where none runs.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
      while (fail_when_staged && staged.load() < static_cast<int>(slot_count) && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      return kiln::make_error(kiln::errc::device_error, "scripted context failure");
    }
    return body();
  }
  int driver_runs = 0;
  bool fail_context = false, fail_when_staged = false;
};

struct fixture {
  std::vector<i64> in, out;
  scripted_device dev;
  explicit fixture(std::size_t n) : in(n), out(n, -1) {
    for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<i64>(i) * 7 - 1000;
    dev.in = &in;
    dev.out = &out;
  }
  bool all_mapped() const {
    for (std::size_t i = 0; i < in.size(); ++i)
      if (out[i] != f(in[i])) return false;
    return true;
  }
};

}  // namespace driven

TEST(DrivenPipeline, EveryElementThroughTheDeviceOnManyThreadsOrOne) {
  for (std::size_t participants : {1u, 2u, 5u}) {
    driven::fixture fx(10'007);
    fx.dev.init();
    work_counter w(fx.in.size(), fx.in.size());
    kiln::detail::driven_pipeline<driven::scripted_device> p(fx.dev, w, fx.dev.chunk, false);
    auto st = p.run(participants);
    ASSERT_TRUE(st.ok()) << st.err().message;
    EXPECT_TRUE(fx.all_mapped()) << participants << " participants";
    EXPECT_FALSE(fx.dev.overlap.load()) << "two threads touched one slot at once";
    EXPECT_EQ(fx.dev.submits.load(), 101);  // 100 chunks of 100 and one of 7
    EXPECT_EQ(fx.dev.drained.load(), 101);
    EXPECT_EQ(w.host_elements(), 0u);
    EXPECT_EQ(fx.dev.driver_runs, 1);
  }
}

TEST(DrivenPipeline, SharingCopiersComputeWhileTheDeviceIsSlow) {
  driven::fixture fx(200'000);
  fx.dev.polls_needed = 200;  // slow device: copiers find no slot to fill and compute instead
  fx.dev.init();
  work_counter w(fx.in.size(), fx.in.size());
  kiln::detail::driven_pipeline<driven::scripted_device> p(fx.dev, w, fx.dev.chunk, true);
  auto st = p.run(1);  // the driver alone: it copies and computes itself while no copier runs
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_TRUE(fx.all_mapped());
  EXPECT_FALSE(fx.dev.overlap.load());
  EXPECT_GT(w.host_elements(), 0u);
  EXPECT_EQ(w.host_elements() + static_cast<std::size_t>(fx.dev.drained.load()) * 100, fx.in.size());
}

TEST(DrivenPipeline, AFailedSubmitOrPollIsReturnedAndEverySlotEnds) {
  for (bool in_submit : {true, false}) {
    driven::fixture fx(50'000);
    if (in_submit)
      fx.dev.fail_submit_at = 17;
    else
      fx.dev.fail_poll_at = 17;
    fx.dev.init();
    work_counter w(fx.in.size(), fx.in.size());
    kiln::detail::driven_pipeline<driven::scripted_device> p(fx.dev, w, fx.dev.chunk, false);
    auto st = p.run(3);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.err().message.find(in_submit ? "scripted submit failure" : "scripted poll failure"),
              std::string::npos);
    EXPECT_EQ(fx.dev.abandoned.load(), in_submit ? 1 : 0);
    EXPECT_FALSE(fx.dev.overlap.load());
    // Nothing was submitted after the failure was seen, far short of the 500 chunks.
    EXPECT_LT(fx.dev.submits.load(), 40);
  }
}

TEST(DrivenPipeline, ADriverThatCannotStartStopsTheCopiers) {
  // At once, and (many times, for the race between a copier claiming a slot and the failed driver
  // leaving) once the copiers are busy: the run returns the error either way, never hangs.
  for (int round = 0; round < 200; ++round) {
    driven::fixture fx(50'000);
    fx.dev.fail_context = true;
    fx.dev.fail_when_staged = round > 0;
    fx.dev.init();
    work_counter w(fx.in.size(), fx.in.size());
    kiln::detail::driven_pipeline<driven::scripted_device> p(fx.dev, w, fx.dev.chunk, true);
    auto st = p.run(4);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.err().message.find("scripted context failure"), std::string::npos);
    EXPECT_EQ(fx.dev.submits.load(), 0);
    ASSERT_FALSE(fx.dev.overlap.load()) << "round " << round;
  }
}

namespace {

// The host's pieces shrink with the iterations beyond the map's usual 10, so that one takes
// about as long at any count (at 1000, a whole piece outlasted the device's whole run).
TEST(HostPiece, ShrinksWithTheIterations) {
  kiln::detail::map_job job;
  EXPECT_EQ(job.host_piece_of(1 << 17), std::size_t{1} << 17) << "no map: the base piece";
  for (std::int64_t k : {1, 10, 100, 1000, 1'000'000}) {
    const auto kp = kiln::detail::prepare({6'700'417, 22, k});
    job.kp = &kp;
    const std::size_t piece = job.host_piece_of(std::size_t{1} << 17);
    if (k <= 10) {
      EXPECT_EQ(piece, std::size_t{1} << 17) << k;
    } else {
      EXPECT_EQ(piece, std::max<std::size_t>(256, (std::size_t{1} << 17) * 10 / static_cast<std::size_t>(k))) << k;
    }
  }
}

}  // namespace
