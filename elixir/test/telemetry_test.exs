# The [:kiln, :run, ...] events, with a stand-in :telemetry module; and none where :telemetry is not loaded.
Code.require_file("support/telemetry.exs", __DIR__)

defmodule Kiln.TelemetryTest do
  # Not async: handlers are global, and another test's runs would send events too.
  use ExUnit.Case, async: false

  alias Kiln.{Buffer, LogisticMap}

  @events [[:kiln, :run, :start], [:kiln, :run, :stop], [:kiln, :run, :exception]]
  @stub Path.expand("support/telemetry.exs", __DIR__)

  def forward(event, measurements, metadata, pid), do: send(pid, {:event, event, measurements, metadata})

  setup do
    unless :erlang.module_loaded(:telemetry), do: Code.compile_file(@stub)
    id = {__MODULE__, make_ref()}
    :ok = :telemetry.attach_many(id, @events, &__MODULE__.forward/4, self())
    on_exit(fn -> if :erlang.module_loaded(:telemetry), do: :telemetry.detach(id) end)
    :ok
  end

  defp events do
    receive do
      {:event, event, measurements, metadata} -> [{event, measurements, metadata} | events()]
    after
      0 -> []
    end
  end

  test "a run is a span: start, then stop with the engine's stats" do
    {result, stats} = LogisticMap.run_stats([1, 2, 3], 61, 22, backend: :scalar, iterations: 4)
    assert result == LogisticMap.Pure.run([1, 2, 3], 61, 22, iterations: 4)

    assert [{[:kiln, :run, :start], start, meta}, {[:kiln, :run, :stop], stop, stop_meta}] = events()
    assert is_integer(start.monotonic_time) and is_integer(start.system_time)
    assert %{backend: :scalar, device: 0, n: 3, p: 61, mu: 22, module: LogisticMap} = meta
    assert meta.options[:iterations] == 4 and meta.options[:host_share] == true
    assert is_reference(meta.telemetry_span_context)

    assert stop.duration >= 0 and stop.monotonic_time >= start.monotonic_time
    assert stop.duration == stop.monotonic_time - start.monotonic_time
    assert stop.host_elements == 0 and stop.chunks == stats.chunks
    assert stop.kernel_s == stats.kernel_s and stop.total_s == stats.total_s
    assert stop_meta.stats == stats
    assert stop_meta.telemetry_span_context == meta.telemetry_span_context
    assert Map.delete(stop_meta, :stats) == meta
  end

  test "a tiny input mapped in the calling process is a span too, without the unread host_share" do
    Application.put_env(:kiln, :host_share, :maybe)

    try do
      assert {[28], %{backend: :pure}} = LogisticMap.run_stats([1], 61, 22)
      assert [{[:kiln, :run, :start], _, meta}, {[:kiln, :run, :stop], _, stop_meta}] = events()
      assert %{backend: :auto, device: 0, n: 1, p: 61, mu: 22} = meta
      assert meta.options[:iterations] == 10 and not Keyword.has_key?(meta.options, :host_share)
      assert stop_meta.stats.backend == :pure
      assert LogisticMap.run([1, 2], 61, 22) == [28, 25]
      assert [{[:kiln, :run, :start], _, _}, {[:kiln, :run, :stop], _, _}] = events()
    after
      Application.delete_env(:kiln, :host_share)
    end
  end

  test "the usual option shapes (none, only :iterations) reach the engine with the options every other shape gives" do
    data = Enum.to_list(1..2000)
    expected = LogisticMap.Pure.run(data, 61, 22, iterations: 3)
    assert LogisticMap.run(data, 61, 22, iterations: 3, chunk_size: 0) == expected
    assert [{_, _, %{options: general}}, _] = events()
    assert LogisticMap.run(data, 61, 22, iterations: 3) == expected
    assert [{_, _, %{options: usual}}, _] = events()
    assert usual == general and general[:host_share] == true

    Application.put_env(:kiln, :iterations, 3)

    try do
      assert LogisticMap.run(data, 61, 22) == expected
      assert [{_, _, %{options: ^general}}, _] = events()
    after
      Application.delete_env(:kiln, :iterations)
    end
  end

  test "a run that raises is a span that ends in an exception event" do
    assert_raise ArgumentError, ~r/element at index 1 is not an integer/, fn ->
      LogisticMap.run([1, :a], 61, 22, backend: :cpu)
    end

    assert [{[:kiln, :run, :start], _, meta}, {[:kiln, :run, :exception], m, ex_meta}] = events()
    assert meta.n == 2 and meta.backend == :cpu
    assert m.duration >= 0
    assert %{kind: :error, reason: %ArgumentError{}, stacktrace: [_ | _]} = ex_meta
    assert ex_meta.telemetry_span_context == meta.telemetry_span_context

    # Arguments refused before the engine is called start no span.
    assert_raise ArgumentError, fn -> LogisticMap.run([1], 0, 22) end
    assert events() == []
  end

  test "every engine call of windows, streams, buffers and the cluster has its span" do
    LogisticMap.run_windows(1..10, 61, 22, window: 4, backend: :scalar)
    assert [4, 4, 2] == for({[:kiln, :run, :stop], _, meta} <- events(), do: meta.n)

    [[1, 2], [3], <<4::signed-native-64>>] |> LogisticMap.stream(61, 22, batch: 8) |> Stream.run()
    # The two lists share a call; the binary has its own (the two calls overlap: either may end first).
    assert [1, 3] == Enum.sort(for {[:kiln, :run, :stop], _, meta} <- events(), do: meta.n)

    buffer = Buffer.upload(1..5, backend: :cpu)
    Buffer.run(buffer, 61, 22, iterations: 2)
    assert [{_, _, start}, {[:kiln, :run, :stop], _, stop}] = events()
    assert %{module: Buffer, n: 5, backend: :cpu, options: [iterations: 2]} = start
    assert stop.stats.backend == :cpu

    Kiln.Cluster.run(1..6, 61, 22, nodes: [node()], parts: 2)
    assert [3, 3] == for({[:kiln, :run, :stop], _, meta} <- events(), do: meta.n)
  end

  test "nothing is emitted, and runs work, where :telemetry is not loaded" do
    :code.purge(:telemetry)
    :code.delete(:telemetry)
    :code.purge(:telemetry)
    refute :erlang.module_loaded(:telemetry)

    try do
      assert LogisticMap.run([1, 2, 3], 61, 22) == [28, 25, 37]
      assert Buffer.upload([1, 2, 3], backend: :cpu) |> Buffer.run(61, 22) |> Buffer.to_list() == [28, 25, 37]
      # The handler attached in setup is still registered: had an event been emitted, it would be here.
      assert events() == []
      refute :erlang.module_loaded(:telemetry)
    after
      Code.compile_file(@stub)
    end

    LogisticMap.run([1], 61, 22)
    assert [_start, _stop] = events()
  end
end
