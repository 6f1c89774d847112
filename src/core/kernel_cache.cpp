// The disk cache of compiled kernels: SHA-256, keys, entries written by rename, and the folder's size bound.
#include "core/kernel_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

namespace kiln::detail {

// ---- SHA-256 -----------------------------------------------------------------------------------

namespace {

constexpr std::array<std::uint32_t, 64> round_constants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

sha256::sha256() noexcept
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void sha256::block(const std::uint8_t* p) noexcept {
  std::array<std::uint32_t, 64> w;
  for (int i = 0; i < 16; ++i)
    w[i] = std::uint32_t{p[4 * i]} << 24 | std::uint32_t{p[4 * i + 1]} << 16 | std::uint32_t{p[4 * i + 2]} << 8 |
           std::uint32_t{p[4 * i + 3]};
  for (int i = 16; i < 64; ++i) {
    const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const std::uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + round_constants[i] + w[i];
    const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void sha256::update(const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const std::uint8_t*>(data);
  bytes_ += n;
  if (used_ > 0) {
    const std::size_t take = std::min(n, buf_.size() - used_);
    std::memcpy(buf_.data() + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
    if (used_ < buf_.size()) return;
    block(buf_.data());
    used_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buf_.data(), p, n);
  used_ = n;
}

sha256_digest sha256::finish() noexcept {
  const std::uint64_t bits = bytes_ * 8;
  const std::uint8_t pad = 0x80;
  update(&pad, 1);
  const std::uint8_t zero = 0;
  while (used_ != 56) update(&zero, 1);
  std::uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(bits >> (56 - 8 * i));
  update(length, 8);
  sha256_digest out;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<std::uint8_t>(h_[i] >> (24 - 8 * j));
  return out;
}

sha256_digest sha256_of(std::span<const char> bytes) noexcept {
  sha256 s;
  s.update(bytes.data(), bytes.size());
  return s.finish();
}

std::string hex(const sha256_digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

// ---- keys --------------------------------------------------------------------------------------

namespace {

constexpr const char* entry_extension = ".kbin";
constexpr const char* temporary_extension = ".tmp";

void put_u64(sha256& s, std::uint64_t v) {
  std::uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  s.update(b, 8);
}

}  // namespace

cache_key::cache_key() { add("kiln kernel cache format", std::to_string(kernel_cache_format_version)); }

cache_key& cache_key::add(std::string_view name, std::string_view value) {
  put_u64(state_, name.size());
  state_.update(name.data(), name.size());
  put_u64(state_, value.size());
  state_.update(value.data(), value.size());
  return *this;
}

sha256_digest cache_key::digest() const {
  sha256 copy = state_;  // a key may be asked for its digest more than once
  return copy.finish();
}

std::string cache_key::file_name() const { return hex(digest()) + entry_extension; }

// ---- entries -----------------------------------------------------------------------------------

namespace {

// magic, format version, header size, payload length, payload SHA-256, key SHA-256; integers
// little-endian, so an entry means the same on every host that shares a folder.
constexpr char entry_magic[8] = {'K', 'I', 'L', 'N', 'K', 'B', 'I', 'N'};
constexpr std::size_t header_bytes = 8 + 4 + 4 + 8 + 32 + 32;

// A temporary file older than this was left by a process that died while writing it.
constexpr auto stale_temporary = std::chrono::hours(1);

std::atomic<std::uint64_t> hits{0}, misses{0}, rejected{0}, stores{0};

void put_le(char* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

std::uint64_t get_le(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// The whole file at `fd`, or nothing on a read error.
std::optional<std::vector<char>> read_all(int fd, std::size_t size) {
  std::vector<char> bytes(size);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, bytes.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // an error, or the file shrank (it never does: entries are renamed whole)
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

kernel_cache_counters kernel_cache_stats() noexcept {
  return {hits.load(), misses.load(), rejected.load(), stores.load()};
}

kernel_cache::kernel_cache(std::filesystem::path dir, std::uint64_t max_bytes) noexcept {
  try {
    if (dir.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);  // its failure shows in the checks below
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    if ((st.st_mode & S_IWOTH) != 0) return;
    if (::access(dir.c_str(), W_OK | X_OK) != 0) return;
    dir_ = std::move(dir);
    max_bytes_ = max_bytes;
  } catch (...) {
    dir_.clear();  // out of memory building a path: no cache
  }
}

kernel_cache kernel_cache::from_environment() noexcept {
  try {
    if (const char* on = std::getenv("KILN_CACHE")) {
      const std::string v = on;
      if (v == "0" || v == "off" || v == "false" || v == "no") return {};
    }
    if (const char* dir = std::getenv("KILN_CACHE_DIR"); dir && *dir) return kernel_cache(dir);
    // The XDG base directory rule: a relative XDG_CACHE_HOME is invalid and ignored.
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/')
      return kernel_cache(std::filesystem::path(xdg) / "kiln");
    if (const char* home = std::getenv("HOME"); home && *home)
      return kernel_cache(std::filesystem::path(home) / ".cache" / "kiln");
  } catch (...) {
  }
  return {};
}

std::filesystem::path kernel_cache::path_of(const cache_key& key) const { return dir_ / key.file_name(); }

std::optional<std::vector<char>> kernel_cache::load(const cache_key& key) const noexcept {
  if (!enabled()) return std::nullopt;
  try {
    const int fd = ::open(path_of(key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      ++misses;
      return std::nullopt;
    }
    struct stat st {};
    std::optional<std::vector<char>> bytes;
    if (::fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(header_bytes))
      bytes = read_all(fd, static_cast<std::size_t>(st.st_size));
    // The entry was used: its time orders eviction (trim), so the folder keeps what runs.
    if (bytes) (void)::futimens(fd, nullptr);
    ::close(fd);
    auto reject = [] {
      ++rejected;
      ++misses;
      return std::nullopt;
    };
    if (!bytes) return reject();
    const char* h = bytes->data();
    const std::size_t payload = bytes->size() - header_bytes;
    if (std::memcmp(h, entry_magic, sizeof entry_magic) != 0 || get_le(h + 8, 4) != kernel_cache_format_version ||
        get_le(h + 12, 4) != header_bytes || get_le(h + 16, 8) != payload)
      return reject();
    const sha256_digest k = key.digest();
    if (std::memcmp(h + 56, k.data(), k.size()) != 0) return reject();  // a file under another key's name
    const sha256_digest sum = sha256_of(std::span<const char>(h + header_bytes, payload));
    if (std::memcmp(h + 24, sum.data(), sum.size()) != 0) return reject();
    bytes->erase(bytes->begin(), bytes->begin() + static_cast<std::ptrdiff_t>(header_bytes));
    ++hits;
    return bytes;
  } catch (...) {
    ++misses;
    return std::nullopt;
  }
}

bool kernel_cache::store(const cache_key& key, std::span<const char> payload) const noexcept {
  if (!enabled()) return false;
  try {
    std::vector<char> entry(header_bytes + payload.size());
    char* h = entry.data();
    std::memcpy(h, entry_magic, sizeof entry_magic);
    put_le(h + 8, kernel_cache_format_version, 4);
    put_le(h + 12, header_bytes, 4);
    put_le(h + 16, payload.size(), 8);
    const sha256_digest sum = sha256_of(payload);
    std::memcpy(h + 24, sum.data(), sum.size());
    const sha256_digest k = key.digest();
    std::memcpy(h + 56, k.data(), k.size());
    std::memcpy(h + header_bytes, payload.data(), payload.size());

    // A name no other writer uses (the process, a counter, the clock: folders may be shared
    // between hosts, where process ids repeat), created exclusively to be sure.
    static std::atomic<std::uint64_t> sequence{0};
    const std::filesystem::path target = path_of(key);
    std::filesystem::path temporary;
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
      const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      temporary = dir_ / (key.file_name() + "." + std::to_string(::getpid()) + "." + std::to_string(sequence++) + "." +
                          std::to_string(now) + temporary_extension);
      fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && errno != EEXIST) return false;
    }
    if (fd < 0) return false;
    // No fsync: a cache may lose an entry in a crash, and a file cut short by one fails its
    // checksum and is rebuilt; syncing would cost every compile milliseconds.
    const bool written = write_all(fd, entry.data(), entry.size());
    const bool closed = ::close(fd) == 0;
    // rename() replaces the target atomically: readers see the old entry or the new one, whole.
    if (!written || !closed || ::rename(temporary.c_str(), target.c_str()) != 0) {
      ::unlink(temporary.c_str());
      return false;
    }
    ++stores;
    trim();
    return true;
  } catch (...) {
    return false;
  }
}

void kernel_cache::drop(const cache_key& key) const noexcept {
  if (!enabled()) return;
  try {
    ::unlink(path_of(key).c_str());
  } catch (...) {
  }
}

// Least recently used entries go first (a load touches its entry), until the folder is within
// max_bytes; temporary files of writers that died go too. Run after each store: stores are as
// rare as compiles, and one scan of a folder of a few thousand entries takes about a millisecond.
// Racing trims at worst remove an entry twice (the second unlink fails harmlessly) or one more
// than needed; a reader that opened an entry before its unlink still reads it whole.
void kernel_cache::trim() const noexcept {
  try {
    struct entry {
      std::filesystem::path path;
      std::uint64_t bytes;
      struct timespec used;
    };
    std::vector<entry> entries;
    std::uint64_t total = 0;
    const auto now = std::chrono::system_clock::now();
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const bool is_entry = ends_with(name, entry_extension);
      if (!is_entry && !ends_with(name, temporary_extension)) continue;  // not ours: left alone
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (!is_entry) {
        const auto modified = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(st.st_mtim.tv_sec)));
        if (now - modified > stale_temporary) ::unlink(it->path().c_str());
        continue;
      }
      entries.push_back({it->path(), static_cast<std::uint64_t>(st.st_size), st.st_mtim});
      total += static_cast<std::uint64_t>(st.st_size);
    }
    if (total <= max_bytes_) return;
    std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
      return a.used.tv_sec != b.used.tv_sec ? a.used.tv_sec < b.used.tv_sec : a.used.tv_nsec < b.used.tv_nsec;
    });
    for (const entry& e : entries) {
      if (total <= max_bytes_) break;
      if (::unlink(e.path.c_str()) == 0 || errno == ENOENT) total -= e.bytes;
    }
  } catch (...) {
  }
}

}  // namespace kiln::detail
