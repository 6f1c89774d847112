// kiln::host_memory: sizes, alignment, reuse of freed blocks, and moves.
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>

#include "kiln/kiln.hpp"

namespace {

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

TEST(HostMemory, FreedBlocksAreReused) {
  std::int64_t* first;
  {
    auto m = kiln::host_memory::allocate(1 << 20);
    ASSERT_TRUE(m.ok());
    first = m->data();
  }
  auto again = kiln::host_memory::allocate((1 << 20) - 5);  // same size class
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->data(), first);
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

}  // namespace
