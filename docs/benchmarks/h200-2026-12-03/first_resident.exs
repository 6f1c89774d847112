# One fresh VM's first resident maps on CUDA at 1000 iterations: the first launch of the kernel that runs in one wave queries its occupancy once per process.
#
#   elixir -pa elixir/_build/prod/lib/kiln/ebin first_resident.exs
ms = fn fun ->
  {us, v} = :timer.tc(fun)
  {Float.round(us / 1000, 3), v}
end

{devices_ms, _} = ms.(fn -> Kiln.devices() end)
buf = Kiln.Buffer.upload(Kiln.Binary.iota(1, 33_554_432), backend: :cuda)
{first_ms, _} = ms.(fn -> Kiln.Buffer.run(buf, 6_700_417, 22, iterations: 1000) end)
times = for _ <- 1..5, do: elem(ms.(fn -> Kiln.Buffer.run(buf, 6_700_417, 22, iterations: 1000) end), 0)
second_ms = Enum.at(Enum.sort(times), 2)
IO.puts("devices_ms=#{devices_ms} first_resident_k1000_ms=#{first_ms} later_median_ms=#{second_ms} beyond_ms=#{Float.round(first_ms - second_ms, 3)}")
