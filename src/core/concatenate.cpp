// kiln::concatenate: parts copied one after another into one array, on every core.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/cpu_simd.hpp"
#include "core/stream_copy.hpp"
#include "core/thread_pool.hpp"
#include "kiln/kiln.hpp"

namespace kiln {

status concatenate(std::span<const std::span<const std::int64_t>> parts, std::span<std::int64_t> out) {
  // starts[i]: where part i begins in `out`; starts.back(): the total.
  std::vector<std::size_t> starts(parts.size() + 1, 0);
  for (std::size_t i = 0; i < parts.size(); ++i) starts[i + 1] = starts[i] + parts[i].size();
  if (starts.back() != out.size())
    return make_error(errc::invalid_argument, "concatenate: the parts hold " + std::to_string(starts.back()) +
                                                  " elements, the output " + std::to_string(out.size()));
  if (out.empty()) return {};
  // Outputs of 32 MiB and more are written past the caches, which they would only flush (as
  // the cpu kernel's are); smaller ones are copied plainly and stay cached for their reader.
  const bool stream = detail::stream_output(out.size());
  constexpr std::size_t grain = std::size_t{1} << 17;  // 1 MiB per task
  detail::parallel_for(out.size(), grain, [&](std::size_t b, std::size_t e) {
    // The part that holds element b, then every part up to e.
    std::size_t i = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), b) - starts.begin()) - 1;
    for (std::size_t pos = b; pos < e; ++i) {
      const std::size_t from = pos - starts[i];
      const std::size_t n = std::min(e, starts[i + 1]) - pos;
      if (n == 0) continue;  // an empty part
      if (stream)
        detail::copy_streaming(out.data() + pos, parts[i].data() + from, n);
      else
        std::memcpy(out.data() + pos, parts[i].data() + from, n * sizeof(std::int64_t));
      pos += n;
    }
  });
  return {};
}

}  // namespace kiln
