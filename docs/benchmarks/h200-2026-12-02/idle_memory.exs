# The GPU memory one VM holds after a 2^25-element CUDA job (256 MiB each way), at once and after the idle release.
#
#   elixir -pa elixir/_build/prod/lib/kiln/ebin idle_memory.exs
held = fn ->
  {out, 0} = System.cmd("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
  me = System.pid()
  out |> String.split("\n", trim: true) |> Enum.map(&String.split(&1, ", ")) |> Enum.filter(&(hd(&1) == me))
  |> Enum.map(fn [_, mib] -> String.to_integer(mib) end) |> Enum.sum()
end
bin = Kiln.Binary.iota(1, 33_554_432)
r = Kiln.LogisticMap.run(bin, 6_700_417, 22, backend: :cuda)
if byte_size(r) != byte_size(bin), do: raise("wrong result size")
after_job = held.()
Process.sleep(3_000)
after_idle = held.()
IO.puts("held_after_job_mib=#{after_job} held_after_3s_idle_mib=#{after_idle}")
