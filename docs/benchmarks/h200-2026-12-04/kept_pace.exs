# Kept results against the pause between calls: for each pause, a process holding one 2^25-element binary makes an untimed warm-up call, then 6 timed CUDA calls (or --backend), each result kept in a list, with a garbage collection and the pause (untimed) before each.
#
# Blocks that one pause's calls leave in the host pool serve the next pause's calls, so give one
# pause per VM for figures that start from an empty pool (run-DY.sh does).
#
#   elixir -pa elixir/_build/prod/lib/kiln/ebin kept_pace.exs [backend] [pause_ms ...]
{backend, pauses} =
  case System.argv() do
    [] -> {:cuda, [0, 1, 2, 5, 10, 20]}
    [b | ps] -> {String.to_atom(b), if(ps == [], do: [0, 1, 2, 5, 10, 20], else: Enum.map(ps, &String.to_integer/1))}
  end

bin = Kiln.Binary.iota(1, 33_554_432)
run = fn -> Kiln.LogisticMap.run(bin, 6_700_417, 22, backend: backend) end

for pause <- pauses do
  task =
    Task.async(fn ->
      _ = run.()

      {times, kept} =
        Enum.reduce(1..6, {[], []}, fn _, {ts, kept} ->
          :erlang.garbage_collect()
          if pause > 0, do: Process.sleep(pause)
          {us, r} = :timer.tc(run)
          {[Float.round(us / 1000, 3) | ts], [r | kept]}
        end)

      true = Enum.all?(kept, &(&1 == hd(kept)))
      Enum.reverse(times)
    end)

  times = Task.await(task, :infinity)
  median = Enum.at(Enum.sort(times), 2) / 2 + Enum.at(Enum.sort(times), 3) / 2
  IO.puts("backend=#{backend} pause_ms=#{pause} calls_ms=#{Enum.join(times, ",")} median_ms=#{Float.round(median, 3)}")
end
