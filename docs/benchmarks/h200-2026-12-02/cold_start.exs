# One fresh VM's first calls on CUDA: Kiln.devices() (the CUDA context's start), the built-in map's first two calls, then a defkernel's first and second call.
#
#   elixir -pa elixir/_build/prod/lib/kiln/ebin cold_start.exs
#
# Run it twice with the same KILN_CACHE_DIR: the first VM compiles the kernel (NVRTC) and stores
# it, the next reads it from the disk cache.
defmodule ColdStart do
  import Kiln.Kernel
  defkernel affine(x), do: rem(x * 3 + 1, 1_000_003)

  def ms(fun) do
    {us, v} = :timer.tc(fun)
    {Float.round(us / 1000, 3), v}
  end
end

{devices_ms, devices} = ColdStart.ms(fn -> Kiln.devices() end)
cuda? = Enum.any?(devices, &(&1.backend == :cuda and &1.available))
unless cuda?, do: raise("no CUDA device here")
bin = Kiln.Binary.iota(1, 1_048_576)
# The first job on the device (its lanes' staging and device memory), before any kernel's load.
{first_map_ms, _} = ColdStart.ms(fn -> Kiln.LogisticMap.run(bin, 6_700_417, 22, backend: :cuda) end)
{second_map_ms, _} = ColdStart.ms(fn -> Kiln.LogisticMap.run(bin, 6_700_417, 22, backend: :cuda) end)
{first_ms, r1} = ColdStart.ms(fn -> ColdStart.affine(bin, backend: :cuda) end)
{second_ms, r2} = ColdStart.ms(fn -> ColdStart.affine(bin, backend: :cuda) end)
if r1 != r2, do: raise("the two calls disagree")
want = for <<x::signed-native-64 <- binary_part(bin, 0, 80)>>, into: <<>>, do: <<rem(x * 3 + 1, 1_000_003)::signed-native-64>>
if binary_part(r1, 0, 80) != want, do: raise("wrong result")
IO.puts("devices_ms=#{devices_ms} first_map_ms=#{first_map_ms} second_map_ms=#{second_map_ms} first_kernel_call_ms=#{first_ms} second_call_ms=#{second_ms} beyond_second_ms=#{Float.round(first_ms - second_ms, 3)}")
