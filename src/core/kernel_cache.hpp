// A disk cache of compiled kernels (cubins, OpenCL program binaries), shared by every process of a user.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::detail {

using sha256_digest = std::array<std::uint8_t, 32>;

// SHA-256 (FIPS 180-4), for cache keys and entry checksums. Written here because the engine
// links no hashing library; its speed (about 100 MB/s, a millisecond for a 100 KiB binary)
// matters little next to a compile.
class sha256 {
 public:
  sha256() noexcept;
  void update(const void* data, std::size_t n) noexcept;
  sha256_digest finish() noexcept;  // the object is spent afterwards

 private:
  void block(const std::uint8_t* p) noexcept;
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t used_ = 0;
  std::uint64_t bytes_ = 0;
};

sha256_digest sha256_of(std::span<const char> bytes) noexcept;
std::string hex(const sha256_digest& d);

// Bumped whenever the entry layout or the meaning of a key part changes: it is written into every
// entry's header and hashed into every key, so older entries are never read as newer ones.
constexpr std::uint32_t kernel_cache_format_version = 1;

// What a compiled binary depends on, as named parts: the source, the compile options, the
// device's architecture and the compiler's and driver's versions. Each part is hashed with its
// name and both lengths, so no two different lists of parts hash alike by concatenation.
class cache_key {
 public:
  cache_key();  // starts with the cache's format version
  cache_key& add(std::string_view name, std::string_view value);
  sha256_digest digest() const;
  std::string file_name() const;  // the digest in hex, with the entries' extension

 private:
  sha256 state_;
};

// Process-wide counts of what every kernel_cache did, for tests and diagnostics.
struct kernel_cache_counters {
  std::uint64_t hits = 0;      // loads that returned an entry
  std::uint64_t misses = 0;    // loads that found none usable (rejected ones included)
  std::uint64_t rejected = 0;  // entries found but damaged (magic, version, length, checksum, key)
  std::uint64_t stores = 0;    // entries written
};
kernel_cache_counters kernel_cache_stats() noexcept;

// One folder of entries, <sha256 of the key>.kbin, each a header (magic, format version, payload
// length, the payload's SHA-256 and the key's) followed by the payload. Entries are written to a
// temporary file in the folder and renamed into place, so a reader sees a whole entry or none and
// processes storing one key at once all succeed (the last rename wins, with equal contents).
// Anything that fails (a missing or damaged entry, a full disk) is a miss or a false store,
// never an error or an exception: the caller compiles as it would without a cache.
class kernel_cache {
 public:
  static constexpr std::uint64_t default_max_bytes = std::uint64_t{256} << 20;

  kernel_cache() = default;  // disabled: every load misses, every store fails
  // The folder `dir`, created if missing. Disabled where it cannot be created, is not a folder,
  // cannot be written, or can be written by every user (anyone could then plant code that Kiln
  // would run). After a store, the oldest entries (by last use) go until the folder holds at
  // most max_bytes.
  explicit kernel_cache(std::filesystem::path dir, std::uint64_t max_bytes = default_max_bytes) noexcept;

  // The cache the environment selects, read at each call: none with KILN_CACHE=0, else
  // KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln.
  static kernel_cache from_environment() noexcept;

  bool enabled() const noexcept { return !dir_.empty(); }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path path_of(const cache_key& key) const;

  std::optional<std::vector<char>> load(const cache_key& key) const noexcept;
  bool store(const cache_key& key, std::span<const char> payload) const noexcept;
  // Removes an entry its user could not use (a binary the driver refused), so that the next
  // process does not try it again before compiling.
  void drop(const cache_key& key) const noexcept;

 private:
  void trim() const noexcept;
  std::filesystem::path dir_;
  std::uint64_t max_bytes_ = default_max_bytes;
};

}  // namespace kiln::detail
