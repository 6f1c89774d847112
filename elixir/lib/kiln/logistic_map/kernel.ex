# The built-in map as a kernel written in Elixir: the one kernel every Kiln.LogisticMap and Kiln.Buffer call runs.
defmodule Kiln.LogisticMap.Kernel do
  @moduledoc false

  import Kiln.Kernel

  # The engine recognises this kernel and runs its hand-tuned code on every backend (the SIMD
  # kernel, the CUDA and OpenCL map kernels, the host's share); written any other way it would
  # still be exact, through the general path.
  defkernel step(x, p, mu), do: rem(mu * x * (x + 1), p)

  @step @kiln_kernel
  @doc false
  # {code, arity, outputs, locals} of step/3, for Kiln.Native.kernel_run/3.
  def descriptor, do: @step
end
