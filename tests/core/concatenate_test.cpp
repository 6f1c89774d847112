// kiln::concatenate: parts of every size (empty ones too) land in order, small and streamed outputs alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using i64 = std::int64_t;

// Parts of random sizes (a quarter of them empty) adding up to `total`, filled with distinct values.
std::vector<std::vector<i64>> random_parts(std::size_t total, std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> cuts{0, total};
  for (std::size_t i = 1; i < count; ++i) cuts.push_back(rng() % 4 == 0 ? cuts[i % cuts.size()] : rng() % (total + 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::vector<i64>> parts;
  i64 next = -static_cast<i64>(total) / 2;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
    parts.emplace_back(cuts[i + 1] - cuts[i]);
    for (auto& v : parts.back()) v = next++ * 2'654'435'761;
  }
  return parts;
}

void check(std::size_t total, std::size_t count, std::uint64_t seed) {
  auto parts = random_parts(total, count, seed);
  std::vector<std::span<const i64>> spans(parts.begin(), parts.end());
  std::vector<i64> want, got(total, 0x5a5a);
  for (const auto& p : parts) want.insert(want.end(), p.begin(), p.end());
  ASSERT_EQ(want.size(), total);
  ASSERT_TRUE(kiln::concatenate(spans, got).ok());
  EXPECT_TRUE(got == want) << total << " elements in " << parts.size() << " parts";
}

TEST(Concatenate, SmallOutputsInManyParts) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) check(1 + seed * 37'771, 1 + seed % 9, seed);
}

// 40 MiB: past the streaming threshold, with parts straddling the 1 MiB tasks.
TEST(Concatenate, LargeOutputsAreStreamed) { check(5'000'011, 13, 99); }

TEST(Concatenate, EmptyPartsAndNoParts) {
  std::vector<i64> a{1, 2}, none, b{3};
  std::vector<std::span<const i64>> spans{none, a, none, none, b, none};
  std::vector<i64> out(3);
  ASSERT_TRUE(kiln::concatenate(spans, out).ok());
  EXPECT_EQ(out, (std::vector<i64>{1, 2, 3}));
  std::vector<i64> empty;
  EXPECT_TRUE(kiln::concatenate({}, empty).ok());
}

TEST(Concatenate, OutputOfTheWrongSizeIsInvalid) {
  std::vector<i64> a{1, 2, 3};
  std::vector<std::span<const i64>> spans{a};
  for (std::size_t n : {0, 2, 4}) {
    std::vector<i64> out(n, 7);
    auto s = kiln::concatenate(spans, out);
    ASSERT_FALSE(s.ok()) << n;
    EXPECT_EQ(s.err().code, kiln::errc::invalid_argument);
    EXPECT_EQ(out, std::vector<i64>(n, 7)) << "nothing is written";
  }
}

}  // namespace
