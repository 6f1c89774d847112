// A backend that exists only to say why it cannot run: compiled-out backends and failed probes use it.
#include "core/backend.hpp"

namespace kiln::detail {
namespace {

class unavailable_backend final : public backend {
 public:
  unavailable_backend(backend_kind kind, std::string reason)
      : kind_(kind), devices_{unavailable_device(kind, std::move(reason))} {}

  backend_kind kind() const override { return kind_; }
  const std::vector<device_info>& devices() override { return devices_; }
  result<run_stats> run(int, std::span<const std::int64_t>, std::span<std::int64_t>, const kernel_params&,
                        const run_options&) override {
    return make_error(errc::backend_unavailable, devices_.front().reason);
  }
  result<std::unique_ptr<resident_buffer>> upload(int, std::span<const std::int64_t>) override {
    return make_error(errc::backend_unavailable, devices_.front().reason);
  }
  result<std::unique_ptr<resident_buffer>> allocate(int, std::size_t) override {
    return make_error(errc::backend_unavailable, devices_.front().reason);
  }
  result<run_stats> run_resident(int, const decoded_kernel&, std::span<resident_buffer* const>,
                                 std::span<resident_buffer* const>, const std::stop_token&, std::size_t) override {
    return make_error(errc::backend_unavailable, devices_.front().reason);
  }

 private:
  backend_kind kind_;
  std::vector<device_info> devices_;
};

}  // namespace

std::unique_ptr<backend> make_unavailable_backend(backend_kind kind, std::string reason) {
  return std::make_unique<unavailable_backend>(kind, std::move(reason));
}

}  // namespace kiln::detail
