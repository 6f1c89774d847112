# :telemetry events around every engine run, emitted only where the :telemetry library is loaded.
defmodule Kiln.Telemetry do
  @moduledoc """
  Kiln emits [`:telemetry`](https://hexdocs.pm/telemetry) events around every run of the engine
  (`Kiln.LogisticMap.run/4` and the functions built on it: `run_stats/4`, each window of
  `run_windows/4`, each batch of `stream/4`, each part a node of `Kiln.Cluster` maps; and
  `Kiln.Buffer.run/4`), as `:telemetry.span/3` would emit them:

    * `[:kiln, :run, :start]` - measurements `%{monotonic_time: native, system_time: native}`;
      metadata below.
    * `[:kiln, :run, :stop]` - measurements `%{duration: native, monotonic_time: native}` and
      the engine's stats that are numbers: `:total_s`, `:kernel_s`, `:host_to_device_s`,
      `:device_to_host_s`, `:decode_s`, `:encode_s` (seconds), `:chunks`, `:host_elements`;
      metadata: the start's, and `:stats`, the whole stats map (see
      `Kiln.LogisticMap.run_stats/4`; its `:backend` and `:device` are the ones that ran).
    * `[:kiln, :run, :exception]` - measurements `%{duration: native, monotonic_time: native}`;
      metadata: the start's, and `:kind`, `:reason`, `:stacktrace`.

  Times are in `:native` units (`System.convert_time_unit/3`). The metadata of every event holds
  `:backend` and `:device` (as asked: `:auto` stays `:auto`; a buffer's are its own), `:n` (the
  elements), `:p`, `:mu`, `:options` (the call's options, defaults filled in; a tiny input that `:auto`
  mapped in the calling process has no `:host_share` there, which it does not use), `:module` (the
  module whose function ran: `Kiln.LogisticMap` or `Kiln.Buffer`) and `:telemetry_span_context`
  (a reference shared by the events of one run).

  Kiln has no dependency on `:telemetry`: events are emitted when the `:telemetry` module is
  loaded (as it is once the application that provides it is started or a handler is attached),
  and a run costs nothing more where it is not.

      :telemetry.attach("kiln-runs", [:kiln, :run, :stop], fn _event, m, meta, _config ->
        IO.puts("\#{meta.n} elements on \#{meta.stats.backend}: \#{m.total_s} s")
      end, nil)
  """

  @numeric_stats [
    :total_s,
    :kernel_s,
    :host_to_device_s,
    :device_to_host_s,
    :decode_s,
    :encode_s,
    :chunks,
    :host_elements
  ]

  # Called through apply/3: :telemetry is no dependency, so the compiler must not look for it.
  @telemetry :telemetry

  @doc false
  # Runs `fun` (which returns {result, stats}) between a start and a stop (or exception) event.
  def span(metadata, fun) do
    if enabled?() do
      emit_span(metadata, fun)
    else
      fun.()
    end
  end

  @doc false
  # The events of a run that has already ended well, begun at `start` (System.monotonic_time/0)
  # and replying `{result, stats}`: work too short to be worth wrapping emits them afterwards,
  # with the measurements a span around it would have given. For callers that found enabled?/0.
  def emit_done(metadata, start, reply) do
    metadata = Map.put(metadata, :telemetry_span_context, make_ref())
    system_start = System.system_time() - (System.monotonic_time() - start)
    execute([:kiln, :run, :start], %{monotonic_time: start, system_time: system_start}, metadata)
    emit_stop(metadata, start, reply)
  end

  defp emit_span(metadata, fun) do
    metadata = Map.put(metadata, :telemetry_span_context, make_ref())
    start = System.monotonic_time()
    execute([:kiln, :run, :start], %{monotonic_time: start, system_time: System.system_time()}, metadata)

    try do
      fun.()
    catch
      kind, reason ->
        stacktrace = __STACKTRACE__
        stop = System.monotonic_time()

        execute(
          [:kiln, :run, :exception],
          %{duration: stop - start, monotonic_time: stop},
          Map.merge(metadata, %{kind: kind, reason: reason, stacktrace: stacktrace})
        )

        :erlang.raise(kind, reason, stacktrace)
    else
      reply -> emit_stop(metadata, start, reply)
    end
  end

  # The stop event of a run begun at `start` that replied `{result, stats}`; returns the reply.
  defp emit_stop(metadata, start, {_result, stats} = reply) do
    stop = System.monotonic_time()
    measurements = Map.merge(Map.take(stats, @numeric_stats), %{duration: stop - start, monotonic_time: stop})
    execute([:kiln, :run, :stop], measurements, Map.put(metadata, :stats, stats))
    reply
  end

  defp execute(event, measurements, metadata),
    do: apply(@telemetry, :execute, [event, measurements, metadata])

  # function_exported?/3 is a cheap check (a look in the export table), true once the module is
  # loaded. A module that is not loaded has no handlers attached (attaching one loads it), so no
  # event would reach anyone: the code path need not be searched for it, and a small run pays
  # only this check (a search's flag, read on every run, cost more than the check itself).
  @doc false
  # Whether events are emitted (the :telemetry module is loaded).
  def enabled?, do: function_exported?(@telemetry, :execute, 3)
end
