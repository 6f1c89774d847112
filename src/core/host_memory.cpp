// kiln::host_memory: pooled host blocks, pinned through the CUDA backend when one is usable.
#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "core/backend.hpp"
#include "kiln/kiln.hpp"

namespace kiln {
namespace detail {
namespace {

constexpr std::size_t huge_page = std::size_t{2} << 20;
// Free blocks kept for reuse, at most this many bytes; beyond it they go back to the system.
constexpr std::size_t pool_limit = std::size_t{4} << 30;

// Below this, blocks are plain heap memory, neither pooled nor pinned: pinning or holding a 2 MiB
// page for a small block costs more than any copy it could save.
constexpr std::size_t pooled_min = huge_page;
constexpr std::size_t alignment = 64;

// Rounds up to a size class: 64-byte steps for small blocks; 2 MiB steps up to 16 MiB, then
// eighths of the power of two, so a pooled block serves requests up to 12.5% smaller and
// repeated calls of one size always hit.
std::size_t size_class(std::size_t bytes) {
  if (bytes < pooled_min) return (bytes + alignment - 1) / alignment * alignment;
  if (bytes <= 8 * huge_page) return (bytes + huge_page - 1) / huge_page * huge_page;
  std::size_t pow = huge_page;
  while (pow * 2 < bytes) pow *= 2;
  const std::size_t step = pow / 8;
  return (bytes + step - 1) / step * step;
}

class host_pool {
 public:
  static host_pool& get() {
    static host_pool p;
    return p;
  }

  // The registry is built first so that it outlives the pool, whose destructor frees pinned
  // blocks through the CUDA backend.
  host_pool() { (void)pinned_allocator(); }

  struct block {
    void* p;
    bool pinned;
  };

  result<block> take(std::size_t capacity) {
    if (capacity < pooled_min) {
      void* p = std::aligned_alloc(alignment, capacity);
      if (!p) return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(capacity) + " bytes");
      return block{p, false};
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      auto it = free_.find(capacity);
      if (it != free_.end()) {
        block b = it->second;
        free_.erase(it);
        cached_ -= capacity;
        return b;
      }
    }
    if (void* p = pinned_allocator().allocate_pinned(capacity)) return block{p, true};
    void* p = std::aligned_alloc(huge_page, capacity);
    if (!p)
      return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(capacity) + " bytes of host memory");
    // Fewer, larger pages: first-touch faults are most of the cost of fresh memory.
    (void)madvise(p, capacity, MADV_HUGEPAGE);
    return block{p, false};
  }

  void give(block b, std::size_t capacity) {
    if (capacity < pooled_min) return std::free(b.p);
    {
      std::lock_guard<std::mutex> lock(m_);
      if (cached_ + capacity <= pool_limit) {
        free_.emplace(capacity, b);
        cached_ += capacity;
        return;
      }
    }
    release(b);
  }

  ~host_pool() {
    for (auto& [cap, b] : free_) release(b);
  }

 private:
  // Pinned memory only where CUDA can run; probing happens once, through the registry.
  backend& pinned_allocator() { return backend_of(backend_kind::cuda); }

  void release(block b) {
    if (b.pinned)
      pinned_allocator().free_pinned(b.p);
    else
      std::free(b.p);
  }

  std::mutex m_;
  std::multimap<std::size_t, block> free_;
  std::size_t cached_ = 0;
};

}  // namespace
}  // namespace detail

result<host_memory> host_memory::allocate(std::size_t elements) {
  if (elements > (std::size_t{1} << 40))
    return make_error(errc::out_of_memory, "cannot allocate " + std::to_string(elements) + " int64 elements");
  const std::size_t capacity = detail::size_class(std::max<std::size_t>(elements, 1) * sizeof(std::int64_t));
  auto b = detail::host_pool::get().take(capacity);
  if (!b) return b.err();
  host_memory m;
  m.data_ = static_cast<std::int64_t*>(b->p);
  m.size_ = elements;
  m.capacity_bytes_ = capacity;
  m.pinned_ = b->pinned;
  return m;
}

host_memory::~host_memory() {
  if (data_) detail::host_pool::get().give({data_, pinned_}, capacity_bytes_);
}

host_memory::host_memory(host_memory&& o) noexcept
    : data_(o.data_), size_(o.size_), capacity_bytes_(o.capacity_bytes_), pinned_(o.pinned_) {
  o.data_ = nullptr;
}

host_memory& host_memory::operator=(host_memory&& o) noexcept {
  if (this != &o) {
    host_memory old(std::move(*this));
    data_ = o.data_;
    size_ = o.size_;
    capacity_bytes_ = o.capacity_bytes_;
    pinned_ = o.pinned_;
    o.data_ = nullptr;
  }
  return *this;
}

}  // namespace kiln
