// A machine without a usable OpenCL library (KILN_OPENCL_LIBRARY naming a missing or wrong one): opencl unavailable with the reason, the cpu backend unaffected.
#include <gtest/gtest.h>

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend_test_support.hpp"
#include "kiln/kiln.hpp"

namespace {

using namespace kiln_test;

// CTest runs this suite with KILN_OPENCL_LIBRARY set (tests/CMakeLists.txt) and, in
// KILN_TEST_OPENCL_REASON, the part of the reason that case must give.
struct setting {
  std::string library;
  std::string expected;
};

setting from_environment() {
  const char* lib = std::getenv("KILN_OPENCL_LIBRARY");
  const char* expected = std::getenv("KILN_TEST_OPENCL_REASON");
  return {lib ? lib : "", expected ? expected : ""};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class OpenCLWithoutLibrary : public ::testing::Test {
 protected:
  void SetUp() override {
    s_ = from_environment();
    ASSERT_FALSE(s_.library.empty() || s_.expected.empty())
        << "run through CTest, which sets KILN_OPENCL_LIBRARY and KILN_TEST_OPENCL_REASON";
  }
  setting s_;
};

TEST_F(OpenCLWithoutLibrary, BackendIsUnavailableNamingTheLibraryAndPackage) {
  const auto ds = devices_of(kiln::backend_kind::opencl);
  ASSERT_EQ(ds.size(), 1u) << "an unavailable backend is listed once";
  const kiln::device_info& d = ds.front();
  EXPECT_FALSE(d.available);
  EXPECT_TRUE(contains(d.reason, s_.library)) << d.reason;
  EXPECT_TRUE(contains(d.reason, "ocl-icd-libopencl1")) << d.reason;
  EXPECT_TRUE(contains(d.reason, s_.expected)) << d.reason;

  // Every way into the backend is refused with that reason.
  std::vector<i64> in = {1, 2, 3}, out(3);
  auto r = kiln::logistic_map(in, out, {61, 22, 10}, options_for("opencl"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, kiln::errc::backend_unavailable);
  EXPECT_TRUE(contains(r.err().message, d.reason)) << r.err().message;
  const std::vector<i64> code = {static_cast<i64>(kiln::op::arg), 0};
  const kiln::arg args[] = {kiln::arg::of_array(in)};
  const std::span<i64> outs[] = {out};
  auto pr = kiln::run({code, 1, 1, 0, 1}, args, outs, options_for("opencl"));
  ASSERT_FALSE(pr);
  EXPECT_EQ(pr.err().code, kiln::errc::backend_unavailable);
  auto buf = kiln::device_buffer::upload(in, options_for("opencl"));
  ASSERT_FALSE(buf);
  EXPECT_EQ(buf.err().code, kiln::errc::backend_unavailable);
}

// Kiln's own cl* functions, called directly: they fail without calling anything.
TEST_F(OpenCLWithoutLibrary, OpenCLFunctionsFailWithoutTheLibrary) {
  cl_uint count = 7;
  EXPECT_EQ(clGetPlatformIDs(0, nullptr, &count), CL_INVALID_OPERATION);
  EXPECT_EQ(count, 7u) << "nothing was written";
  cl_int e = CL_SUCCESS;
  EXPECT_EQ(clCreateContextFromType(nullptr, CL_DEVICE_TYPE_ALL, nullptr, nullptr, &e), nullptr);
  EXPECT_EQ(e, CL_INVALID_OPERATION);
  // Two cl_int* parameters: the error goes to the last one, errcode_ret, not to binary_status.
  cl_int binary_status = CL_SUCCESS;
  e = CL_SUCCESS;
  EXPECT_EQ(clCreateProgramWithBinary(nullptr, 0, nullptr, nullptr, nullptr, &binary_status, &e), nullptr);
  EXPECT_EQ(e, CL_INVALID_OPERATION);
  EXPECT_EQ(binary_status, CL_SUCCESS);
  EXPECT_EQ(clCreateBuffer(nullptr, CL_MEM_READ_WRITE, 8, nullptr, nullptr), nullptr) << "a null errcode_ret is allowed";
  EXPECT_EQ(clGetExtensionFunctionAddressForPlatform(nullptr, "clIcdGetPlatformIDsKHR"), nullptr);
}

TEST_F(OpenCLWithoutLibrary, CpuBackendAndAutoStillRunTheMap) {
  const auto in = random_inputs(50000, 11);
  const kiln::map_params prm{6700417, 22, 10};
  const auto want = reference(in, prm);

  std::vector<i64> out(in.size());
  auto r = kiln::logistic_map(in, out, prm, options_for("cpu"));
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(out, want) << first_difference(out, want);

  // auto picks something other than the missing backend and gets the same results.
  std::vector<i64> auto_out(in.size());
  kiln::run_options any;
  auto a = kiln::logistic_map(in, auto_out, prm, any);
  ASSERT_TRUE(a) << a.err().message;
  EXPECT_NE(a.value().backend, "opencl");
  EXPECT_EQ(auto_out, want) << first_difference(auto_out, want);

  // A program on the cores: x * 3 - 7, twice.
  const std::vector<i64> code = {static_cast<i64>(kiln::op::arg), 0, static_cast<i64>(kiln::op::literal), 3,
                                 static_cast<i64>(kiln::op::mul),    static_cast<i64>(kiln::op::literal), 7,
                                 static_cast<i64>(kiln::op::sub)};
  std::vector<i64> small(1000), small_out(small.size());
  for (std::size_t i = 0; i < small.size(); ++i) small[i] = static_cast<i64>(i) - 500;
  const kiln::arg small_args[] = {kiln::arg::of_array(small)};
  const std::span<i64> small_outs[] = {small_out};
  auto p = kiln::run({code, 1, 1, 0, 2}, small_args, small_outs, options_for("cpu"));
  ASSERT_TRUE(p) << p.err().message;
  for (std::size_t i = 0; i < small.size(); ++i) ASSERT_EQ(small_out[i], (small[i] * 3 - 7) * 3 - 7) << "element " << i;
}

}  // namespace
