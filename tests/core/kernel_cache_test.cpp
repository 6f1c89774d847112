// The disk cache of compiled kernels: SHA-256, keys, hits and misses, damaged entries, the environment, racing processes, the size bound.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/kernel_cache.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::detail::cache_key;
using kiln::detail::kernel_cache;
using kiln::detail::kernel_cache_stats;

std::string sha256_hex(const std::string& s) {
  return kiln::detail::hex(kiln::detail::sha256_of(std::span<const char>(s.data(), s.size())));
}

std::vector<char> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<char> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Sets an environment variable for one scope, restoring what was there.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A fresh folder under the system's temporary directory, removed afterwards.
class KernelCache : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kiln-cache-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static cache_key key_of(const std::string& source, const std::string& arch = "sm_90") {
    cache_key k;
    k.add("source", source).add("options", "-O3").add("arch", arch).add("compiler", "12.4").add("driver", "550");
    return k;
  }
  fs::path dir_;
};

TEST(Sha256, MatchesTheStandardsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in pieces that straddle the 64-byte blocks, the same digest as in one piece.
  const std::string text(1000, 'x');
  kiln::detail::sha256 s;
  for (std::size_t at = 0, step = 1; at < text.size(); at += step, step = step % 97 + 13)
    s.update(text.data() + at, std::min(step, text.size() - at));
  EXPECT_EQ(kiln::detail::hex(s.finish()), sha256_hex(text));
}

TEST(CacheKey, EveryPartAndItsBoundariesCount) {
  auto digest = [](std::initializer_list<std::pair<const char*, const char*>> parts) {
    cache_key k;
    for (auto [n, v] : parts) k.add(n, v);
    return k.digest();
  };
  EXPECT_EQ(digest({{"source", "x"}, {"arch", "sm_90"}}), digest({{"source", "x"}, {"arch", "sm_90"}}));
  EXPECT_NE(digest({{"source", "x"}, {"arch", "sm_90"}}), digest({{"source", "x"}, {"arch", "sm_80"}}));
  EXPECT_NE(digest({{"source", "ab"}, {"arch", "c"}}), digest({{"source", "a"}, {"arch", "bc"}}));
  EXPECT_NE(digest({{"source", "x"}}), digest({{"sourcex", ""}}));
  EXPECT_NE(digest({{"a", "1"}, {"b", "2"}}), digest({{"b", "2"}, {"a", "1"}}));
  EXPECT_EQ(cache_key().add("s", "x").file_name().size(), 64u + 5u) << "a SHA-256 in hex and .kbin";
}

TEST_F(KernelCache, MissesThenHits) {
  const kernel_cache cache(dir_);
  ASSERT_TRUE(cache.enabled());
  const auto before = kernel_cache_stats();
  const cache_key key = key_of("kernel A");
  EXPECT_FALSE(cache.load(key).has_value());
  const std::vector<char> payload = bytes_of(std::string("\x7f" "ELF", 4) + std::string(5000, '\0') + "tail");
  ASSERT_TRUE(cache.store(key, payload));
  auto got = cache.load(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, payload);
  // An empty payload is an entry like any other.
  const cache_key empty = key_of("kernel with nothing");
  ASSERT_TRUE(cache.store(empty, {}));
  ASSERT_TRUE(cache.load(empty).has_value());
  EXPECT_TRUE(cache.load(empty)->empty());
  const auto after = kernel_cache_stats();
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.hits - before.hits, 3u);
  EXPECT_EQ(after.stores - before.stores, 2u);
  EXPECT_EQ(after.rejected, before.rejected);
  // No temporary file is left behind, only the entries.
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().extension(), ".kbin") << e.path();
    ++files;
  }
  EXPECT_EQ(files, 2u);
}

TEST_F(KernelCache, AnyDifferentKeyPartMisses) {
  const kernel_cache cache(dir_);
  ASSERT_TRUE(cache.store(key_of("kernel A"), bytes_of("binary A")));
  EXPECT_FALSE(cache.load(key_of("kernel B")).has_value()) << "another source";
  EXPECT_FALSE(cache.load(key_of("kernel A", "sm_80")).has_value()) << "another architecture";
  cache_key other_driver;
  other_driver.add("source", "kernel A").add("options", "-O3").add("arch", "sm_90").add("compiler", "12.4").add("driver", "560");
  EXPECT_FALSE(cache.load(other_driver).has_value()) << "another driver";
  cache_key other_options;
  other_options.add("source", "kernel A").add("options", "").add("arch", "sm_90").add("compiler", "12.4").add("driver", "550");
  EXPECT_FALSE(cache.load(other_options).has_value()) << "other options";
  EXPECT_EQ(cache.load(key_of("kernel A")), bytes_of("binary A"));
}

// Damaged entries, of every kind, are misses (and counted as rejected); the next store replaces
// each with a good entry.
TEST_F(KernelCache, DamagedEntriesMissAndAreOverwritten) {
  const kernel_cache cache(dir_);
  const std::vector<char> payload = bytes_of(std::string(3000, 'k') + "end");
  struct damage {
    const char* what;
    void (*apply)(std::vector<char>&);
  };
  const damage damages[] = {
      {"truncated", [](std::vector<char>& b) { b.resize(b.size() - 1); }},
      {"cut inside the header", [](std::vector<char>& b) { b.resize(20); }},
      {"empty", [](std::vector<char>& b) { b.clear(); }},
      {"a flipped payload byte", [](std::vector<char>& b) { b[b.size() - 100] ^= 0x10; }},
      {"a flipped checksum byte", [](std::vector<char>& b) { b[30] ^= 1; }},
      {"wrong magic", [](std::vector<char>& b) { b[0] = 'X'; }},
      {"another format version", [](std::vector<char>& b) { b[8] = static_cast<char>(b[8] + 1); }},
      {"a longer length", [](std::vector<char>& b) { b[16] = static_cast<char>(b[16] + 1); }},
      {"bytes appended", [](std::vector<char>& b) { b.push_back('!'); }},
  };
  for (const damage& d : damages) {
    const cache_key key = key_of(std::string("kernel damaged: ") + d.what);
    ASSERT_TRUE(cache.store(key, payload)) << d.what;
    std::vector<char> bytes = file_bytes(cache.path_of(key));
    d.apply(bytes);
    write_file(cache.path_of(key), bytes);
    const auto before = kernel_cache_stats();
    EXPECT_FALSE(cache.load(key).has_value()) << d.what;
    const auto after = kernel_cache_stats();
    EXPECT_EQ(after.rejected - before.rejected, 1u) << d.what;
    EXPECT_EQ(after.misses - before.misses, 1u) << d.what;
    ASSERT_TRUE(cache.store(key, payload)) << d.what;
    EXPECT_EQ(cache.load(key), payload) << d.what << ": the rebuilt entry is read back";
  }
  // A whole, valid entry under another key's name (copied by hand, say) is not that key's.
  const cache_key a = key_of("kernel A"), b = key_of("kernel B");
  ASSERT_TRUE(cache.store(a, bytes_of("binary A")));
  fs::copy_file(cache.path_of(a), cache.path_of(b), fs::copy_options::overwrite_existing);
  EXPECT_FALSE(cache.load(b).has_value());
  EXPECT_EQ(cache.load(a), bytes_of("binary A"));
}

TEST_F(KernelCache, DropRemovesAnEntry) {
  const kernel_cache cache(dir_);
  const cache_key key = key_of("kernel A");
  ASSERT_TRUE(cache.store(key, bytes_of("binary A")));
  cache.drop(key);
  EXPECT_FALSE(fs::exists(cache.path_of(key)));
  EXPECT_FALSE(cache.load(key).has_value());
  cache.drop(key);  // twice: nothing to do, no error
}

TEST_F(KernelCache, TheEnvironmentChoosesTheFolderOrNone) {
  const std::string dir = dir_.string();
  {
    scoped_env cache_dir("KILN_CACHE_DIR", (dir + "/chosen/deeper").c_str());
    scoped_env on("KILN_CACHE", nullptr);
    const kernel_cache c = kernel_cache::from_environment();
    ASSERT_TRUE(c.enabled());
    EXPECT_EQ(c.dir(), fs::path(dir + "/chosen/deeper")) << "created, parents too";
    EXPECT_TRUE(fs::is_directory(c.dir()));
    for (const char* off : {"0", "off"}) {
      scoped_env disabled("KILN_CACHE", off);
      const kernel_cache none = kernel_cache::from_environment();
      EXPECT_FALSE(none.enabled()) << "KILN_CACHE=" << off;
      EXPECT_FALSE(none.store(key_of("kernel A"), bytes_of("binary A")));
      EXPECT_FALSE(none.load(key_of("kernel A")).has_value());
    }
    scoped_env enabled("KILN_CACHE", "1");
    EXPECT_TRUE(kernel_cache::from_environment().enabled());
  }
  {
    scoped_env cache_dir("KILN_CACHE_DIR", nullptr);
    scoped_env xdg("XDG_CACHE_HOME", (dir + "/xdg").c_str());
    scoped_env home("HOME", (dir + "/home").c_str());
    EXPECT_EQ(kernel_cache::from_environment().dir(), fs::path(dir + "/xdg/kiln"));
    scoped_env relative_xdg("XDG_CACHE_HOME", "relative/cache");
    EXPECT_EQ(kernel_cache::from_environment().dir(), fs::path(dir + "/home/.cache/kiln")) << "a relative XDG_CACHE_HOME is ignored";
    scoped_env no_xdg("XDG_CACHE_HOME", nullptr);
    EXPECT_EQ(kernel_cache::from_environment().dir(), fs::path(dir + "/home/.cache/kiln"));
    scoped_env no_home("HOME", nullptr);
    EXPECT_FALSE(kernel_cache::from_environment().enabled());
  }
}

// A folder that cannot be made (a file stands in its path: this holds for root too, whom
// permissions do not stop) or that every user may write disables the cache, without an error.
TEST_F(KernelCache, AFolderThatCannotBeUsedDisablesIt) {
  write_file(dir_ / "a-file", bytes_of("not a folder"));
  {
    scoped_env cache_dir("KILN_CACHE_DIR", (dir_ / "a-file" / "kiln").c_str());
    const kernel_cache c = kernel_cache::from_environment();
    EXPECT_FALSE(c.enabled());
    EXPECT_FALSE(c.store(key_of("kernel A"), bytes_of("binary A")));
    EXPECT_FALSE(c.load(key_of("kernel A")).has_value());
  }
  EXPECT_FALSE(kernel_cache(dir_ / "a-file").enabled()) << "a file, not a folder";
  const fs::path open_to_all = dir_ / "open";
  fs::create_directory(open_to_all);
  fs::permissions(open_to_all, fs::perms::all);
  EXPECT_FALSE(kernel_cache(open_to_all).enabled()) << "anyone could plant a binary there";
  fs::permissions(open_to_all, fs::perms::owner_all);
  EXPECT_TRUE(kernel_cache(open_to_all).enabled());
  // A folder that goes away after the cache was opened: stores fail, loads miss.
  const kernel_cache gone(dir_ / "gone");
  ASSERT_TRUE(gone.enabled());
  fs::remove(dir_ / "gone");
  EXPECT_FALSE(gone.store(key_of("kernel A"), bytes_of("binary A")));
  EXPECT_FALSE(gone.load(key_of("kernel A")).has_value());
}

// Processes storing and loading one key at once, as VMs starting together do: every load finds
// a whole entry (the first store of each process precedes its loads, and a rename never leaves
// the name empty), and every entry read is one that some process wrote, byte for byte.
TEST_F(KernelCache, RacingProcessesNeverReadAPartialEntry) {
  constexpr int processes = 4;
  constexpr int rounds = 100;
  constexpr std::size_t size = 128 * 1024;  // large enough that writes take many system calls
  const cache_key key = key_of("kernel raced");
  // Each writer's payload names its writer and round in its first bytes, then repeats a byte
  // derived from them, so a mix of two payloads cannot pass the check below.
  auto payload_of = [&](int writer, int round) {
    std::vector<char> p(size, static_cast<char>(writer * 31 + round));
    std::memcpy(p.data(), &writer, sizeof writer);
    std::memcpy(p.data() + sizeof writer, &round, sizeof round);
    return p;
  };
  std::vector<pid_t> children;
  for (int w = 0; w < processes; ++w) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const kernel_cache cache(dir_);
      int bad = 0;
      for (int r = 0; r < rounds && bad == 0; ++r) {
        if (!cache.store(key, payload_of(w, r))) bad = 2;
        for (int l = 0; l < 3 && bad == 0; ++l) {
          auto got = cache.load(key);
          if (!got) {
            bad = 3;
            break;
          }
          int writer = -1, round = -1;
          std::memcpy(&writer, got->data(), sizeof writer);
          std::memcpy(&round, got->data() + sizeof writer, sizeof round);
          if (writer < 0 || writer >= processes || round < 0 || round >= rounds || *got != payload_of(writer, round))
            bad = 4;
        }
      }
      ::_exit(bad);  // not exit(): the parent's test fixtures and static objects are not the child's to tear down
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << "2: a store failed, 3: a load missed, 4: an entry read was not one written";
  }
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().extension(), ".kbin") << "left behind: " << e.path();
}

// The folder stays within its bound: least recently used entries go first, a load counting as
// a use; temporary files of writers that died go after an hour; files that are not Kiln's stay.
TEST_F(KernelCache, TheFolderStaysWithinItsBound) {
  constexpr std::size_t entry = 4096;
  const kernel_cache cache(dir_, 3 * (entry + 200));  // room for three entries with their headers
  auto age = [](const fs::path& p, int seconds_ago) {
    const struct timespec t[2] = {{::time(nullptr) - seconds_ago, 0}, {::time(nullptr) - seconds_ago, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), t, 0), 0) << p;
  };
  std::vector<cache_key> keys;
  for (int i = 0; i < 3; ++i) {
    keys.push_back(key_of("kernel " + std::to_string(i)));
    ASSERT_TRUE(cache.store(keys.back(), std::vector<char>(entry, 'a')));
    age(cache.path_of(keys.back()), 1000 - i * 100);  // 0 is the oldest
  }
  ASSERT_TRUE(cache.load(keys[0]).has_value());  // 0 is now the most recently used
  write_file(dir_ / "stale.kbin.1.2.3.tmp", bytes_of("from a writer that died"));
  age(dir_ / "stale.kbin.1.2.3.tmp", 2 * 3600);
  write_file(dir_ / "fresh.kbin.1.2.3.tmp", bytes_of("from a writer still writing"));
  write_file(dir_ / "notes.txt", std::vector<char>(3 * entry, 'n'));
  keys.push_back(key_of("kernel 3"));
  ASSERT_TRUE(cache.store(keys.back(), std::vector<char>(entry, 'b')));
  EXPECT_TRUE(fs::exists(cache.path_of(keys[0]))) << "used last, kept";
  EXPECT_FALSE(fs::exists(cache.path_of(keys[1]))) << "the least recently used goes";
  EXPECT_TRUE(fs::exists(cache.path_of(keys[2])));
  EXPECT_TRUE(fs::exists(cache.path_of(keys[3])));
  EXPECT_FALSE(fs::exists(dir_ / "stale.kbin.1.2.3.tmp"));
  EXPECT_TRUE(fs::exists(dir_ / "fresh.kbin.1.2.3.tmp"));
  EXPECT_TRUE(fs::exists(dir_ / "notes.txt")) << "not an entry: never removed, nor counted";
  std::uintmax_t total = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".kbin") total += e.file_size();
  EXPECT_LE(total, 3 * (entry + 200));
  // An entry larger than the whole bound is not kept.
  const kernel_cache tiny(dir_ / "tiny", 100);
  EXPECT_TRUE(tiny.store(key_of("kernel big"), std::vector<char>(1000, 'c')));
  EXPECT_FALSE(tiny.load(key_of("kernel big")).has_value());
}

}  // namespace
