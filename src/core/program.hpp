// A program's checked operations, shared by the host interpreter and the backends that compile programs (OpenCL, CUDA).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln::detail {

struct program_instr {
  program_op op;
  // param: its index; literal: its value; boolean: 0 or 1; if_then: the index of its if_else;
  // if_else: the index of its if_end (so that a branch no element takes can be skipped).
  std::int64_t operand;
};

// The program's operations, checked (see kiln::validate); each pushes one value on a stack of at
// most program_max_depth, inside at most program_max_nesting branches.
constexpr std::size_t program_max_depth = 64;
constexpr std::size_t program_max_nesting = 32;
result<std::vector<program_instr>> decode_program(const program& prog);

// The error a run reports when element `index` (whose input was `x`) faults: the host interprets
// that element again to say in which iteration and why. internal if it does not fault here.
error program_fault(const std::vector<program_instr>& code, const program& prog, std::size_t index, std::int64_t x);

// How a device's run of a program ended, from the lowest faulting element index its chunks
// recorded (`first`; `none` where no element faulted): ok, the fault's error (program_fault), or
// internal when the device names an element past the input's end. `device` names the backend.
constexpr std::uint64_t no_fault = ~std::uint64_t{0};
status device_program_outcome(const std::vector<program_instr>& code, const program& prog,
                              std::span<const std::int64_t> in, std::uint64_t first, const char* device);

// The source of one kernel named kiln_program that applies the program, checked, to every
// element (core/program_source.cpp describes both dialects' signatures and fault reports).
enum class program_dialect { opencl, cuda };
std::string program_source(const std::vector<program_instr>& code, program_dialect dialect);

}  // namespace kiln::detail
