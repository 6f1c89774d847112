# Where a list call's time goes at one n: each op in a fresh process that builds its own list, with the collections it ran and the engine's own split.
#   usage: elixir -pa elixir/_build/prod/lib/kiln/ebin bench/lists_split.exs N [HEAP] [REPEAT]
#
# The ops are those of bench/run's `elixir.lists.*` rows: :lists.reverse/1, Kiln.empty_call/1,
# and the map from a list to a list on cpu and on CUDA device 0 (where there is one). HEAP (default
# 0) makes each process hold a list of that many elements first, as the big_heap rows do. For each
# op, the median of REPEAT (default 5) runs after one warm-up: the call's time, the time of the
# garbage collections inside it that took 1 ms or more (the VM's long_gc monitor), and for the
# maps the engine's decode and encode (run_stats).

defmodule KilnBench.ListsSplit do
  @p 6_700_417
  @mu 22

  def main(argv) do
    [n | rest] = Enum.map(argv, &String.to_integer/1)
    heap = Enum.at(rest, 0, 0)
    repeat = Enum.at(rest, 1, 5)
    cuda? = Enum.any?(Kiln.devices(), &(&1.backend == :cuda and &1.available))

    ops =
      [
        reverse: fn data -> {:lists.reverse(data), %{}} end,
        empty_call: fn data -> {Kiln.empty_call(data), %{}} end,
        cpu: &stats_op(&1, :cpu)
      ] ++ if(cuda?, do: [cuda0: &stats_op(&1, :cuda)], else: [])

    :erlang.system_monitor(self(), [{:long_gc, 1}])

    IO.puts(
      "n = #{n}, held list #{heap}, median of #{repeat} (ms; gc: collections of 1 ms or more inside the call)"
    )

    for {name, op} <- ops do
      _ = once(op, n, heap)
      runs = for _ <- 1..repeat, do: once(op, n, heap)
      keys = runs |> hd() |> Map.keys() |> Enum.sort()

      fields =
        Enum.map_join(keys, " ", fn k -> "#{k}=#{Float.round(median(Enum.map(runs, &(&1[k] * 1.0))), 1)}" end)

      IO.puts("#{name}: #{fields}")
    end
  end

  defp stats_op(data, backend) do
    {res, s} = Kiln.LogisticMap.run_stats(data, @p, @mu, backend: backend)
    {res, %{decode_ms: s.decode_s * 1.0e3, encode_ms: s.encode_s * 1.0e3}}
  end

  defp once(op, n, heap) do
    parent = self()
    {pid, ref} = spawn_monitor(fn -> child(parent, op, n, heap) end)
    :ok = wait_start(pid)
    # Collections before the start (building the list) are not the call's.
    _ = drain(pid, [])
    {t, split} = wait_done(pid, ref, n)
    :ok = wait_down(ref)
    gcs = drain(pid, [])
    Map.merge(split, %{ms: t, gc_ms: Enum.sum(gcs), gcs: length(gcs)})
  end

  defp child(parent, op, n, heap) do
    held = if heap > 0, do: :binary.bin_to_list(:binary.copy(<<7>>, heap)), else: [0]
    data = :lists.seq(1, n)
    :erlang.garbage_collect()
    send(parent, {:start, self()})
    t0 = System.monotonic_time(:nanosecond)
    {res, split} = op.(data)
    t = (System.monotonic_time(:nanosecond) - t0) / 1.0e6
    send(parent, {:done, self(), t, split, length(res), hd(held)})
  end

  defp wait_start(pid) do
    receive do
      {:start, ^pid} -> :ok
    end
  end

  # The op's time and split, or the op's own exit (a crash of the op ends the script with it).
  defp wait_done(pid, ref, n) do
    receive do
      {:done, ^pid, t, split, ^n, _} -> {t, split}
      {:DOWN, ^ref, _, _, reason} -> exit({:op_failed, reason})
    end
  end

  defp wait_down(ref) do
    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    end
  end

  # Every long_gc report of `pid` already received.
  defp drain(pid, acc) do
    receive do
      {:monitor, ^pid, :long_gc, info} -> drain(pid, [info[:timeout] | acc])
    after
      0 -> acc
    end
  end

  defp median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))
end

KilnBench.ListsSplit.main(System.argv())
