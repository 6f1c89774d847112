// OpenCL program builds on a thread of Kiln's own with a deep stack, whatever the caller's stack.
#pragma once

#include <cstddef>
#include <functional>

#include "kiln/result.hpp"

namespace kiln::detail {

// The stack of the build thread. An in-process compiler (PoCL's clang and LLVM) recurses about
// as deep as a program's expression is long: a chain of 1,000 additions overran a 256 KiB stack
// inside LLVM's scalar evolution (2,000 needed more than 256 KiB and less than 1 MiB), and the
// Erlang VM's dirty schedulers have 320 KiB. 256 MiB leaves room for programs far longer than any
// that compiles in reasonable time; the memory is only reserved until the compiler reaches into it.
constexpr std::size_t build_stack_bytes = std::size_t{256} << 20;

// Runs `work` on a new thread with a build_stack_bytes stack and waits for it to return.
// device_error, without running `work`, if no such thread could be started (the address space
// limited below the stack's size, say).
status run_on_build_thread(const std::function<void()>& work);

}  // namespace kiln::detail
