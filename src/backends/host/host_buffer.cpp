// Resident buffers for the host backends (scalar, cpu): the data simply stays in host memory.
#include <cstring>
#include <vector>

#include "core/backend.hpp"
#include "core/kernel_ir.hpp"

namespace kiln::detail {
namespace {

// The data lives in a kiln::host_memory block: pooled, so a kernel's fresh output buffer costs
// no page faults and no zero fill, which make a large std::vector slow to create.
class host_buffer final : public resident_buffer {
 public:
  explicit host_buffer(host_memory m) : data_(std::move(m)) {}

  std::size_t size() const override { return data_.size(); }
  std::int64_t* data() { return data_.data(); }

  status download(std::span<std::int64_t> out) const override {
    if (!out.empty()) std::memcpy(out.data(), data_.data(), out.size_bytes());
    return {};
  }

 private:
  host_memory data_;
};

}  // namespace

result<std::unique_ptr<resident_buffer>> make_host_buffer(std::span<const std::int64_t> data) {
  auto b = make_host_buffer(data.size());
  if (b && !data.empty()) std::memcpy(static_cast<host_buffer&>(**b).data(), data.data(), data.size_bytes());
  return b;
}

result<std::unique_ptr<resident_buffer>> make_host_buffer(std::size_t n) {
  auto m = host_memory::allocate(n);
  if (!m) return m.err();
  return std::unique_ptr<resident_buffer>(std::make_unique<host_buffer>(std::move(m).value()));
}

result<run_stats> run_host_resident(backend& owner, int device, const decoded_kernel& k,
                                    std::span<resident_buffer* const> arrays, std::span<resident_buffer* const> outputs,
                                    bool parallel, const std::stop_token& stop, std::size_t base) {
  std::vector<const std::int64_t*> ins;
  std::vector<std::int64_t*> outs;
  for (auto* a : arrays) ins.push_back(static_cast<host_buffer*>(a)->data());
  for (auto* o : outputs) outs.push_back(static_cast<host_buffer*>(o)->data());
  const std::size_t n = arrays.front()->size();
  if (k.builtin) {
    run_options o;
    o.stop = stop;
    return owner.run(device, {ins[0], n}, {outs[0], n}, prepare(k.builtin->params), o);
  }
  return interpret_all(k, ins, outs, n, parallel, stop, base);
}

}  // namespace kiln::detail
