// Tests of the engine's switches as read from an environment: defaults, the values each accepts, and what it ignores.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "core/settings.hpp"

namespace {

using kiln::detail::opencl_pipeline_mode;
using kiln::detail::read_settings;
using kiln::detail::settings;

settings read_from(const std::map<std::string, std::string>& env) {
  return read_settings([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Settings, DefaultsWithoutAnyVariable) {
  const settings s = read_from({});
  EXPECT_TRUE(s.narrow_transfers);
  EXPECT_TRUE(s.zero_copy);
  EXPECT_TRUE(s.square_form);
  EXPECT_TRUE(s.huge_pages);
  EXPECT_TRUE(s.spare_blocks);
  EXPECT_EQ(s.opencl_pipeline, opencl_pipeline_mode::by_device);
  EXPECT_EQ(s.staging_lanes, 0u);
  EXPECT_EQ(s.worker_nice, 19);
  EXPECT_EQ(s.opencl_library, "");
  EXPECT_EQ(s.device_pool_idle, std::chrono::milliseconds(2000));
}

TEST(Settings, FeatureSwitchesTurnOffOnlyAtZero) {
  EXPECT_FALSE(read_from({{"KILN_NARROW_TRANSFERS", "0"}}).narrow_transfers);
  EXPECT_FALSE(read_from({{"KILN_ZERO_COPY", "0"}}).zero_copy);
  EXPECT_FALSE(read_from({{"KILN_SQUARE_FORM", "0"}}).square_form);
  EXPECT_FALSE(read_from({{"KILN_HUGE_PAGES", "0"}}).huge_pages);
  EXPECT_FALSE(read_from({{"KILN_SPARE_BLOCKS", "0"}}).spare_blocks);
  for (const char* on : {"1", "", "00", "0 ", "off"}) {
    EXPECT_TRUE(read_from({{"KILN_NARROW_TRANSFERS", on}}).narrow_transfers) << '"' << on << '"';
    EXPECT_TRUE(read_from({{"KILN_ZERO_COPY", on}}).zero_copy) << '"' << on << '"';
    EXPECT_TRUE(read_from({{"KILN_SQUARE_FORM", on}}).square_form) << '"' << on << '"';
    EXPECT_TRUE(read_from({{"KILN_HUGE_PAGES", on}}).huge_pages) << '"' << on << '"';
    EXPECT_TRUE(read_from({{"KILN_SPARE_BLOCKS", on}}).spare_blocks) << '"' << on << '"';
  }
}

TEST(Settings, OpenclPipelineTakesItsTwoNames) {
  EXPECT_EQ(read_from({{"KILN_OPENCL_PIPELINE", "driven"}}).opencl_pipeline, opencl_pipeline_mode::driven);
  EXPECT_EQ(read_from({{"KILN_OPENCL_PIPELINE", "lanes"}}).opencl_pipeline, opencl_pipeline_mode::lanes);
  EXPECT_EQ(read_from({{"KILN_OPENCL_PIPELINE", "Driven"}}).opencl_pipeline, opencl_pipeline_mode::by_device);
}

TEST(Settings, StagingLanesWithinOneToSixtyFour) {
  EXPECT_EQ(read_from({{"KILN_STAGING_LANES", "1"}}).staging_lanes, 1u);
  EXPECT_EQ(read_from({{"KILN_STAGING_LANES", "64"}}).staging_lanes, 64u);
  for (const char* ignored : {"0", "65", "-3", "many"})
    EXPECT_EQ(read_from({{"KILN_STAGING_LANES", ignored}}).staging_lanes, 0u) << ignored;
}

TEST(Settings, WorkerNiceAndOpenclLibrary) {
  EXPECT_EQ(read_from({{"KILN_WORKER_NICE", "0"}}).worker_nice, 0);
  EXPECT_EQ(read_from({{"KILN_WORKER_NICE", "19"}}).worker_nice, 19);
  EXPECT_EQ(read_from({{"KILN_OPENCL_LIBRARY", "/opt/libOpenCL.so"}}).opencl_library, "/opt/libOpenCL.so");
  EXPECT_EQ(read_from({{"KILN_OPENCL_LIBRARY", ""}}).opencl_library, "");
}

TEST(Settings, DevicePoolIdleInMillisecondsZeroKeeps) {
  using std::chrono::milliseconds;
  EXPECT_EQ(read_from({{"KILN_DEVICE_POOL_IDLE_MS", "250"}}).device_pool_idle, milliseconds(250));
  EXPECT_EQ(read_from({{"KILN_DEVICE_POOL_IDLE_MS", "0"}}).device_pool_idle, milliseconds(0));
  EXPECT_EQ(read_from({{"KILN_DEVICE_POOL_IDLE_MS", "99999999999999"}}).device_pool_idle, milliseconds(1ll << 31));
  for (const char* ignored : {"", "-5", "+5", "1s", "soon", " 5", "99999999999999999999999"})
    EXPECT_EQ(read_from({{"KILN_DEVICE_POOL_IDLE_MS", ignored}}).device_pool_idle, milliseconds(2000)) << ignored;
}

}  // namespace
