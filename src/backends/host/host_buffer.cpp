// Resident buffers for the host backends (scalar, cpu): the data simply stays in host memory.
#include <vector>

#include "core/backend.hpp"

namespace kiln::detail {
namespace {

class host_buffer final : public resident_buffer {
 public:
  host_buffer(backend& owner, int device, std::span<const std::int64_t> data)
      : owner_(owner), device_(device), data_(data.begin(), data.end()) {}

  std::size_t size() const override { return data_.size(); }

  result<run_stats> run(const kernel_params& kp) override {
    return owner_.run(device_, data_, data_, kp, run_options{});
  }

  status download(std::span<std::int64_t> out) const override {
    std::copy(data_.begin(), data_.end(), out.begin());
    return {};
  }

 private:
  backend& owner_;
  int device_;
  std::vector<std::int64_t> data_;
};

}  // namespace

std::unique_ptr<resident_buffer> make_host_buffer(backend& owner, int device, std::span<const std::int64_t> data) {
  return std::make_unique<host_buffer>(owner, device, data);
}

}  // namespace kiln::detail
