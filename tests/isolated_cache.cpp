// Gives every test process an empty kernel cache of its own, so no test reads or fills the user's.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

// Set before main (and so before any backend compiles a kernel), removed at exit. Each process
// starts empty, so the suites compile as they would without a cache and stay independent of
// the order and repetition of runs; the cache's own tests point it elsewhere as they need.
struct isolated_cache {
  std::string dir;
  isolated_cache() {
    std::error_code ec;
    std::string base = std::filesystem::temp_directory_path(ec).string();
    if (ec || base.empty()) base = "/tmp";
    std::string pattern = base + "/kiln-test-cache-XXXXXX";
    if (::mkdtemp(pattern.data())) {
      dir = pattern;
      ::setenv("KILN_CACHE_DIR", dir.c_str(), 1);
    } else {
      ::setenv("KILN_CACHE", "0", 1);  // no folder of our own: no cache, rather than the user's
    }
  }
  ~isolated_cache() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

const isolated_cache the_cache;

}  // namespace
