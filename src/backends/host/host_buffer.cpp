// Resident buffers for the host backends (scalar, cpu): the data simply stays in host memory.
#include <vector>

#include "core/backend.hpp"
#include "core/kernel_ir.hpp"

namespace kiln::detail {
namespace {

class host_buffer final : public resident_buffer {
 public:
  explicit host_buffer(std::span<const std::int64_t> data) : data_(data.begin(), data.end()) {}

  std::size_t size() const override { return data_.size(); }
  std::int64_t* data() { return data_.data(); }

  status download(std::span<std::int64_t> out) const override {
    std::copy(data_.begin(), data_.end(), out.begin());
    return {};
  }

 private:
  std::vector<std::int64_t> data_;
};

}  // namespace

std::unique_ptr<resident_buffer> make_host_buffer(backend&, int, std::span<const std::int64_t> data) {
  return std::make_unique<host_buffer>(data);
}

result<run_stats> run_host_resident(backend& owner, int device, const decoded_kernel& k,
                                    std::span<resident_buffer* const> arrays, std::span<resident_buffer* const> outputs,
                                    bool parallel) {
  std::vector<const std::int64_t*> ins;
  std::vector<std::int64_t*> outs;
  for (auto* a : arrays) ins.push_back(static_cast<host_buffer*>(a)->data());
  for (auto* o : outputs) outs.push_back(static_cast<host_buffer*>(o)->data());
  const std::size_t n = arrays.front()->size();
  if (k.builtin)
    return owner.run(device, {ins[0], n}, {outs[0], n}, prepare(k.builtin->params), run_options{});
  return interpret_all(k, ins, outs, n, parallel);
}

}  // namespace kiln::detail
