// Copies between the caller's int64 arrays and GPU staging: plain, streamed, and narrowed to 32 bits for the bus.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::detail {

// Copies n int64 on this thread with non-temporal stores: for a destination no cache should
// keep, such as a GPU lane's chunk going back into the caller's array.
void copy_streaming(std::int64_t* dst, const std::int64_t* src, std::size_t n);

// Copies n int64 into n int32 if every one of them fits in 32 bits, and says whether they did
// (when not, dst holds an unspecified prefix and the caller copies the chunk at full width). A
// chunk of small values then crosses the bus in half the bytes (see narrow_transfers in core/lanes.hpp).
bool pack_narrow(std::int32_t* dst, const std::int64_t* src, std::size_t n);

// Sign-extends n int32 into n int64 with non-temporal stores, like copy_streaming.
void widen_streaming(std::int64_t* dst, const std::int32_t* src, std::size_t n);

}  // namespace kiln::detail
