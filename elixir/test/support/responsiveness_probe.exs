# Run by responsiveness_test.exs in a fresh VM: measures how late a 1 ms ticker gets during a native run.
#
#   elixir -pa EBIN responsiveness_probe.exs BACKEND        (the VM's default flags)
#
# Prints "ticks=N max_late_us=N run_ms=N". BACKEND is cpu, scalar, opencl, cuda, `lists` (list
# <-> binary conversions of 2^20 elements instead of a run) or `jobs16` (16 asynchronous jobs of
# 2^20 elements in flight at once, on the default device). A backend's runs are measured after
# one untimed run, repeated for at least 50 ms; with KILN_PROBE_COLD=1, the process's first run
# alone, the device's start included. With KILN_PROBE_THREADS=1 it then lists the VM's threads
# (name, niceness, CPU ticks): which ones ran beside the ticker.
defmodule Probe do
  # Asks for a message every 1 ms and keeps the worst lateness, until told to stop.
  def tick(count, max_late) do
    t0 = System.monotonic_time(:microsecond)
    Process.send_after(self(), :tick, 1)

    receive do
      :tick ->
        late = System.monotonic_time(:microsecond) - t0 - 1000
        tick(count + 1, max(max_late, late))

      {:stop, from} ->
        # The tick still pending counts too: a ticker whose timer sat on a blocked scheduler
        # would otherwise see the stop first and never record the wait.
        pending = System.monotonic_time(:microsecond) - t0 - 1000
        send(from, {:ticks, count, max(max_late, pending)})
    end
  end

  def measure(fun) do
    ticker = spawn_link(fn -> tick(0, 0) end)
    # Let the ticker settle into its loop before the load starts.
    Process.sleep(20)
    {run_us, _} = :timer.tc(fun)
    send(ticker, {:stop, self()})

    receive do
      {:ticks, ticks, max_late} ->
        IO.puts("ticks=#{ticks} max_late_us=#{max_late} run_ms=#{div(run_us, 1000)}")
    end

    if System.get_env("KILN_PROBE_THREADS") == "1", do: threads()
  end

  # Each result is let go before the next run (a process that keeps its results makes every
  # run fill fresh memory: the benchmark's kept-results rows measure that).
  def repeat_until(fun, until) do
    fun.()
    :erlang.garbage_collect()
    if System.monotonic_time(:millisecond) < until, do: repeat_until(fun, until)
  end

  # /proc/self/task/*/stat: field 2 the name, 14 and 15 user and system ticks, 19 the niceness.
  defp threads do
    for tid <- File.ls!("/proc/self/task") do
      stat = File.read!("/proc/self/task/#{tid}/stat")
      [_, name, rest] = Regex.run(~r/^\d+ \((.*)\) (.*)$/s, stat)
      fields = String.split(rest)
      ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
      {ticks, "thread #{tid} #{name} nice=#{Enum.at(fields, 16)} ticks=#{ticks}"}
    end
    |> Enum.sort(:desc)
    |> Enum.take(24)
    |> Enum.each(fn {_, line} -> IO.puts(line) end)
  end
end

[mode] = System.argv()
input = Kiln.Binary.iota(0, 16_777_215)

case mode do
  "lists" ->
    chunk = binary_part(input, 0, 8 * 1_048_576)

    Probe.measure(fn ->
      list = Kiln.Binary.to_list(chunk)
      Kiln.Binary.from_list(list)
      Kiln.LogisticMap.run(list, 61, 22, backend: :cpu)
    end)

  "jobs16" ->
    parts = for i <- 0..15, do: binary_part(input, i * 8 * 1_048_576, 8 * 1_048_576)

    Probe.measure(fn ->
      parts
      |> Enum.map(&Kiln.LogisticMap.async(&1, 6_700_417, 22))
      |> Kiln.await_many(:infinity)
    end)

  backend ->
    backend = String.to_existing_atom(backend)
    run = fn -> Kiln.LogisticMap.run(input, 6_700_417, 22, backend: backend) end
    # One run first, unless KILN_PROBE_COLD=1: the probe measures jobs, not the process's first
    # start of a device (a driver's start, which maps memory and loads libraries, is measured on
    # its own that way).
    if System.get_env("KILN_PROBE_COLD") == "1" do
      Probe.measure(run)
    else
      run.()
      :erlang.garbage_collect()
      # Runs again until 50 ms have passed: a GPU or a machine of many cores takes a few ms
      # for one run, too short a window to tell a late ticker.
      until = System.monotonic_time(:millisecond) + 50
      Probe.measure(fn -> Probe.repeat_until(run, until) end)
    end
end
