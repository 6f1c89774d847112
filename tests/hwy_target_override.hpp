// For tests that run code on every instruction set compiled in: pins Highway's run-time choice for a scope.
#pragma once

#include <cstdint>

#include "hwy/targets.h"

namespace kiln_test {

// Makes Highway dispatch to `target` until the scope ends, then restores the run-time choice
// however the test ends.
struct target_override {
  explicit target_override(std::int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~target_override() { hwy::SetSupportedTargetsForTest(0); }
  target_override(const target_override&) = delete;
  target_override& operator=(const target_override&) = delete;
};

}  // namespace kiln_test
