# The logistic map through the native engine: whole inputs, windows, and per-phase timings.
defmodule Kiln.LogisticMap do
  @moduledoc """
  The exact integer logistic map `x <- rem(mu * x * (x + 1), p)`, applied `iterations` times to
  every element, computed by the native engine.

  Results are exactly those of `Kiln.LogisticMap.Pure` (Elixir's unbounded integers and `rem/2`,
  whose result takes the sign of the dividend) on every backend. Domain: elements and `mu` fit in
  int64, `p` is in `1..2^32-1`, `iterations >= 0`.

      iex> 1..3 |> Kiln.LogisticMap.run(61, 22)
      [28, 25, 37]

  Data can be a list of integers, a `Range`, a binary of native-endian signed 64-bit integers
  (see `Kiln.Binary`), or any other `Enumerable` of integers (a `Stream`, say); the result has the
  input's shape (a binary gives a binary, anything else a list). Binaries cross into the NIF
  without conversion, so they are the fast path for large inputs; a range crosses as its bounds
  (no list is built for it); other enumerables are listed first.

      iex> Stream.map(1..3, & &1) |> Kiln.LogisticMap.run(61, 22)
      [28, 25, 37]

  ## Options

    * `:backend` - `:auto` (default: a GPU if there is one, else `:cpu`; on device 0 a tiny
      input, a list or binary of at most 256 elements × iterations, is mapped in the calling
      process with Elixir's own arithmetic, which costs less than a call into the engine),
      `:cpu` (all cores, SIMD), `:scalar` (one core, the reference loop), `:opencl` or `:cuda`.
    * `:device` - the index among the backend's devices (default `0`), see `Kiln.devices/0`;
      or `:all`: every usable device of the backend shares the run (`:cuda` feeds all its GPUs
      from one queue of chunks; a backend with one usable device runs on it; `:opencl` with
      several raises `ArgumentError`).
    * `:iterations` - how many times the map is applied (default `10`).
    * `:chunk_size` - at most this many elements per device chunk (default `0`: the
      backend's choice).
    * `:phase_times` - GPU backends: time each chunk's host-to-device copy, kernel and
      device-to-host copy with device events, for `run_stats/4` (default `false`: the events
      cost about 15% of an end-to-end run, so without this option those stats are `0.0`).
    * `:host_share` - GPU backends, inputs that are not already in page-locked memory: a
      staging thread whose device slots are all busy computes the next chunk itself with the
      `:cpu` backend's kernel instead of waiting, so the host's cores and the GPU share the work
      (default `true`; `:host_elements` in `run_stats/4` counts the host's elements; inputs
      below 2^20 elements, and beyond 10 iterations below 2^20 * iterations / 10, are not
      shared, as a host chunk would outlast what the host's share saves). Results are the same either way; `false` makes the device compute every element.

  `:backend`, `:device`, `:iterations` and `:host_share` take their defaults from `config :kiln`
  where it sets them (see `Kiln.Options`); an option given to a call overrides the configuration.

  ## Errors and memory

  Bad arguments (a value of the wrong type, an improper list, options that are not a keyword
  list, an unknown option), unknown backends and unavailable backends (with the engine's reason)
  raise `ArgumentError` naming the argument; a bad element is named by its index in the whole
  input. Device failures raise `Kiln.Error`.

  A call whose result cannot fit in the memory available (a list costs 16 bytes an element on
  the heap, a binary 8) raises `ArgumentError` naming the bytes needed and available before
  anything is allocated, instead of ending in the VM's out-of-memory abort; see `Kiln.Options`
  for the bound.

  ## Telemetry

  Every engine call is wrapped in `[:kiln, :run, :start | :stop | :exception]` events where the
  `:telemetry` library is loaded; see `Kiln.Telemetry`.
  """

  alias Kiln.{Args, Engine, Memory, Options, Telemetry}
  require Kiln.Args

  @type data :: [integer] | Range.t() | binary | Enumerable.t()
  @type stats :: %{
          backend: atom,
          device: String.t(),
          host_to_device_s: float,
          kernel_s: float,
          device_to_host_s: float,
          total_s: float,
          chunks: non_neg_integer,
          host_elements: non_neg_integer,
          decode_s: float,
          encode_s: float
        }

  @run_keys [:backend, :device, :iterations, :chunk_size, :phase_times, :host_share]
  # run/4 and run_stats/4 read `config :kiln, :host_share` only where the engine runs: a tiny
  # input mapped in the calling process has no use for it, and each configuration read costs
  # about as much as mapping an element (docs/BENCHMARKS.md: small calls).
  @call_keys [:backend, :device, :iterations, :chunk_size, :phase_times, {:host_share, nil}]

  @doc """
  Applies the map to every element of `data`; see the module doc for the options.

      iex> Kiln.LogisticMap.run([1, 2, 3], 61, 22, backend: :scalar, iterations: 1)
      [44, 10, 20]
  """
  @spec run(data, pos_integer, integer, keyword) :: [integer] | binary
  def run(data, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts, @call_keys)
    {result, _stats} = dispatch(data, p, mu, opts, false)
    result
  end

  @doc """
  Like `run/4`, and also returns where the time went, as the engine measured it (seconds).

  The stats hold `:backend` (the one that ran, `:auto` resolved; `:pure` where `:auto` mapped a
  tiny input in the calling process, see `:backend` above), `:device` (its name),
  `:host_to_device_s`, `:kernel_s`, `:device_to_host_s` (on GPU backends only with
  `phase_times: true`; host backends report their whole run as `:kernel_s`, and so does CUDA
  for data outside page-locked memory, whose kernel reads and writes the pinned staging itself
  instead of copying it), `:total_s` (the
  engine's whole call), `:chunks` (device chunks and host pieces), `:host_elements` (how many
  elements the host computed, see `:host_share`), and the NIF's own `:decode_s` / `:encode_s` (terms to native
  arrays and back).
  """
  @spec run_stats(data, pos_integer, integer, keyword) :: {[integer] | binary, stats}
  def run_stats(data, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts, @call_keys)
    dispatch(data, p, mu, opts, true)
  end

  # ---- tiny inputs ----------------------------------------------------------------------------------
  #
  # A call into the NIF costs a few microseconds before any work (its arguments, the engine's
  # checks, the reply), which is more than Elixir's own arithmetic takes for a handful of
  # elements: with `backend: :auto` on device 0, at most @tiny_work element-iterations of a list
  # or a binary run here, in the calling process, exactly as Kiln.LogisticMap.Pure defines
  # them (docs/BENCHMARKS.md: the crossover). Anything else, or an element that is no int64 (the
  # engine words that error), goes to the engine.
  @tiny_work 256

  # Little work with `backend: :auto` runs in the calling process; the rest in the engine.
  # `stats?`: the caller wants the stats (else a tiny run reads no clock unless telemetry is on).
  # The options come in the order of @call_keys (Options.validate!/2 keeps it), so the tiny case
  # is a match rather than three lookups.
  defp dispatch(data, p, mu, [{:backend, :auto}, {:device, 0}, {:iterations, k} | _] = opts, stats?)
       when is_list(data) or is_binary(data) do
    case tiny_run(data, p, mu, k, div(@tiny_work, max(k, 1)), stats?) do
      {:ok, result, n, t0} -> tiny_reply(result, n, t0, p, mu, opts)
      :engine -> engine_dispatch(data, p, mu, opts)
    end
  end

  defp dispatch(data, p, mu, opts, _stats?), do: engine_dispatch(data, p, mu, opts)

  defp engine_dispatch(data, p, mu, opts) do
    {nif_data, as_list, n} = Args.data_n!(data)
    Memory.check_result!(as_list, n, fn -> "a run over #{n} elements" end)
    opts = Keyword.replace!(opts, :host_share, host_share(opts[:host_share]))
    engine_run(nif_data, as_list, n, p, mu, opts, &"element at index #{&1}")
  end

  defp host_share(nil), do: Options.default(:host_share)
  defp host_share(flag), do: flag

  # At most `limit` elements run here (0: none).
  defp tiny_run(_data, _p, _mu, _k, 0, _stats?), do: :engine

  defp tiny_run(data, p, mu, k, limit, stats?) when is_list(data) do
    t0 = tiny_clock(stats?)

    case tiny_count(data, limit, 0) do
      :engine ->
        :engine

      n ->
        {:ok, tiny_map(data, k, p, mu), n, t0}
    end
  end

  defp tiny_run(data, p, mu, k, limit, stats?)
       when rem(byte_size(data), 8) == 0 and byte_size(data) <= 8 * limit do
    t0 = tiny_clock(stats?)
    result = for <<x::signed-native-64 <- data>>, into: <<>>, do: <<iterate(x, k, p, mu)::signed-native-64>>
    {:ok, result, div(byte_size(data), 8), t0}
  end

  defp tiny_run(_data, _p, _mu, _k, _limit, _stats?), do: :engine

  # The start time where someone reads it (the stats, telemetry), else nil: two clock reads
  # cost about a quarter of a one-element call.
  defp tiny_clock(true), do: System.monotonic_time()
  defp tiny_clock(false), do: if(Telemetry.enabled?(), do: System.monotonic_time())

  # The length of a proper list of at most `limit` int64 integers, else :engine; checked before
  # any work, so a longer list costs only this walk of its first elements.
  defp tiny_count([x | rest], limit, n) when limit > 0 and Args.is_int64(x),
    do: tiny_count(rest, limit - 1, n + 1)

  defp tiny_count([], _limit, n), do: n
  defp tiny_count(_other, _limit, _n), do: :engine

  # A body recursion rather than Enum.map/2 and a closure: the same list, fewer calls.
  defp tiny_map([x | rest], k, p, mu), do: [iterate(x, k, p, mu) | tiny_map(rest, k, p, mu)]
  defp tiny_map([], _k, _p, _mu), do: []

  # Pure's map with the step written into the loop: calling Pure's own loop (a step function
  # called each iteration) measured about 15% slower at 16 elements on the 2-core machine, and
  # Pure's speed is the pure-Elixir baseline the benchmarks compare against, so it stays as is.
  defp iterate(x, 0, _p, _mu), do: x
  defp iterate(x, k, p, mu), do: iterate(rem(mu * x * (x + 1), p), k - 1, p, mu)

  # The engine's reply shape, with `backend: :pure` in the stats, and the telemetry events an
  # engine run would have where :telemetry is loaded.
  defp tiny_reply(result, _n, nil, _p, _mu, _opts), do: {result, nil}

  defp tiny_reply(result, n, t0, p, mu, opts) do
    # The configured :host_share is not read here (the run does not use it): the metadata's
    # options go without it, and a bad configured value raises only where the engine runs.
    opts = Keyword.delete(opts, :host_share)
    s = System.convert_time_unit(System.monotonic_time() - t0, :native, :nanosecond) / 1.0e9

    stats = %{
      backend: :pure,
      device: "the calling process",
      host_to_device_s: 0.0,
      kernel_s: s,
      device_to_host_s: 0.0,
      total_s: s,
      chunks: 1,
      host_elements: 0,
      decode_s: 0.0,
      encode_s: 0.0
    }

    if Telemetry.enabled?() do
      metadata = %{module: __MODULE__, backend: :auto, device: 0, n: n, p: p, mu: mu, options: opts}
      Telemetry.emit_done(metadata, t0, {result, stats})
    else
      {result, stats}
    end
  end

  @doc """
  Starts `run/4` and returns at once: a `Kiln.Job` whose result `Kiln.await/2` collects.

  The run goes on on Kiln's own threads, so a process can keep several runs in flight (on one
  GPU or several) and work meanwhile. Arguments are checked here, raising `ArgumentError` as
  `run/4` does; the run's own failures are raised by `Kiln.await/2`. If the calling process
  exits, the run stops and frees what it held.

      iex> job = Kiln.LogisticMap.async([1, 2, 3], 61, 22)
      iex> Kiln.await(job)
      [28, 25, 37]
  """
  @spec async(data, pos_integer, integer, keyword) :: Kiln.Job.t()
  def async(data, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts, @run_keys)
    {nif_data, as_list, n} = Args.data_n!(data)
    Memory.check_result!(as_list, n, fn -> "a run over #{n} elements" end)
    {kernel, args, nif_opts} = engine_call(nif_data, as_list, p, mu, opts)

    Engine.start(kernel, args, nif_opts, fn reply ->
      {result, _stats} = engine_reply(reply, &"element at index #{&1}")
      result
    end)
  end

  @doc """
  Streams `data` through the NIF in windows of `:window` elements (default `65_536`) and
  concatenates the results: the seed's `benchmarks8`. Takes the options of `run/4` too.

  Binaries give a binary, anything else a list; the result equals `run/4`'s, and a bad element
  is named by its index in the whole input. A `Range` or any other `Enumerable` (a `Stream`) is
  walked window by window, never listed whole: only the result is held.

      iex> Kiln.LogisticMap.run_windows(1..5, 61, 22, window: 2)
      [28, 25, 37, 50, 25]
  """
  @spec run_windows(data, pos_integer, integer, keyword) :: [integer] | binary
  def run_windows(data, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts, @run_keys ++ [:window])
    {window, opts} = Keyword.pop!(opts, :window)
    run = fn part, as_list, n, offset -> window_run(part, as_list, n, p, mu, opts, offset) end

    cond do
      is_binary(data) ->
        {_, false, n} = Args.data_n!(data)
        # The windows' results, then the binary they are joined into.
        Memory.check!(2 * Memory.int64_bytes(n), fn -> "run_windows over a binary of #{n} elements" end)
        bytes = window * 8

        for offset <- 0..(byte_size(data) - 1)//bytes do
          part = binary_part(data, offset, min(bytes, byte_size(data) - offset))
          run.(part, false, div(byte_size(part), 8), div(offset, 8))
        end
        |> IO.iodata_to_binary()

      is_list(data) ->
        n = Args.proper_length!(data, "data")
        Memory.check!(Memory.list_bytes(n), fn -> "run_windows over #{n} elements" end)
        data |> list_windows(window, 0, run, []) |> :lists.append()

      is_struct(data, Range) ->
        case Args.range_data!(data) do
          {:iota, first, step, count} ->
            Memory.check!(Memory.list_bytes(count), fn -> "run_windows over #{inspect(data)}" end)

            for start <- 0..(count - 1)//window do
              n = min(window, count - start)
              run.(Args.iota!(first + start * step, step, n), true, n, start)
            end
            |> :lists.append()

          list ->
            list |> list_windows(window, 0, run, []) |> :lists.append()
        end

      Args.enumerable?(data) ->
        enum_windows(data, window, run)

      true ->
        # The message run/4 gives for data of no shape it takes.
        Args.data_n!(data)
    end
  end

  @doc """
  Maps a stream of chunks through the engine, lazily: returns a `Stream` whose elements are the
  chunks' results, in order, each `run/4`'s for that chunk (a binary chunk gives a binary, any
  other a list).

  Each chunk is a list of integers, a binary of native-endian int64, a `Range` or another
  `Enumerable` of integers. Small consecutive chunks of the same shape (lists, or binaries) are
  gathered into one engine call of up to `:batch` elements (default `65_536`), whose result is
  cut back into the chunks' results: a call into the NIF costs tens of microseconds, so a
  stream of many small chunks would otherwise spend its time crossing. `batch: 1` gives each
  chunk its own call.

  At most two calls are in flight, each in a `Task`: a batch's call starts as soon as it is
  gathered, while the previous batch's call finishes and its results are emitted, in order; so
  the next batch is mapped while the current one's results are consumed, and memory stays
  bounded by a few batches whatever the stream's length. A consumer that stops early (say,
  `Enum.take/2`) ends the call still in flight. Takes the options of `run/4` and
  `:batch`. Arguments are checked when `stream/4` is called; a bad chunk raises `ArgumentError`
  when the stream reaches it, naming its index in the stream.

      iex> [[1, 2], [3], []] |> Kiln.LogisticMap.stream(61, 22) |> Enum.to_list()
      [[28, 25], [37], []]
  """
  @spec stream(Enumerable.t(), pos_integer, integer, keyword) :: Enumerable.t()
  def stream(chunks, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts, @run_keys ++ [:batch])
    {batch, opts} = Keyword.pop!(opts, :batch)

    unless Args.enumerable?(chunks) do
      raise ArgumentError,
            "chunks must be an Enumerable of chunks (lists or binaries), got #{Args.show(chunks)}"
    end

    chunks
    |> Stream.with_index()
    |> Stream.chunk_while(nil, &gather(&1, &2, batch), &flush_batch/1)
    |> Stream.concat([:end])
    |> Stream.transform(fn -> nil end, &overlap(&1, &2, p, mu, opts), &shutdown/1)
  end

  # ---- engine calls -------------------------------------------------------------------------------

  # One call into the engine, between telemetry events. `where` names a bad element from its
  # index in `nif_data`, in the caller's terms.
  defp engine_run(nif_data, as_list, n, p, mu, opts, where) do
    metadata = %{
      module: __MODULE__,
      backend: opts[:backend],
      device: opts[:device],
      n: n,
      p: p,
      mu: mu,
      options: opts
    }

    Telemetry.span(metadata, fn ->
      {kernel, args, nif_opts} = engine_call(nif_data, as_list, p, mu, opts)
      kernel |> Engine.call(args, nif_opts) |> engine_reply(where)
    end)
  end

  # What the NIF takes for one run of the built-in map.
  defp engine_call(nif_data, as_list, p, mu, opts) do
    {code, arity, outputs, locals} = Kiln.LogisticMap.Kernel.descriptor()

    nif_opts = %{
      backend: opts[:backend],
      device: Args.device!(opts[:device]),
      chunk_size: opts[:chunk_size],
      phase_times: opts[:phase_times],
      host_share: opts[:host_share],
      as_list: as_list
    }

    {{code, arity, outputs, locals, opts[:iterations]}, [nif_data, p, mu], nif_opts}
  end

  defp engine_reply({:ok, [result], stats}, _where), do: {result, stats}
  defp engine_reply({:error, reason}, where), do: Args.raise_error!(reason, where)

  defp window_run(part, as_list, n, p, mu, opts, offset) do
    {result, _stats} = engine_run(part, as_list, n, p, mu, opts, &"element at index #{&1 + offset}")
    result
  end

  # ---- run_windows ----------------------------------------------------------------------------------

  # Each window is split off with its length counted, so an improper tail is found here.
  defp list_windows([], _window, _offset, _run, acc), do: Enum.reverse(acc)

  defp list_windows(list, window, offset, run, acc) do
    {head, n, rest} = take(list, window, [], 0)
    list_windows(rest, window, offset + n, run, [run.(head, true, n, offset) | acc])
  end

  defp take(rest, 0, acc, n), do: {:lists.reverse(acc), n, rest}
  defp take([x | rest], left, acc, n), do: take(rest, left - 1, [x | acc], n + 1)
  defp take([], _left, acc, n), do: {:lists.reverse(acc), n, []}

  defp take(tail, _left, _acc, _n) do
    raise ArgumentError,
          "data must be a proper list of integers, got an improper list ending in #{Args.show(tail)}"
  end

  # Any other Enumerable, window by window; the result's size is known only as it grows, so it is
  # held to the memory there was at the start.
  defp enum_windows(data, window, run) do
    budget = with {bytes, _source} <- Memory.available(), do: bytes

    {acc, _count} =
      data
      |> Stream.chunk_every(window)
      |> Enum.reduce({[], 0}, fn part, {acc, offset} ->
        n = length(part)

        if budget && Memory.list_bytes(offset + n) > budget do
          Memory.check!(Memory.list_bytes(offset + n), fn ->
            "run_windows over an Enumerable of more than #{offset} elements"
          end)
        end

        {[run.(part, true, n, offset) | acc], offset + n}
      end)

    acc |> Enum.reverse() |> :lists.append()
  end

  # ---- stream -----------------------------------------------------------------------------------------

  # Chunks become {data, n, index}; consecutive ones of one shape gather into a batch of at most
  # `batch` elements (a larger chunk is a batch of its own). A batch is {shape, count, chunks in
  # reverse}; it is emitted when full, when the next chunk does not fit in it, or at the end.
  defp gather({chunk, index}, acc, batch) do
    {shape, data, n} = chunk!(chunk, index, batch)
    item = {data, n, index}

    case acc do
      nil -> emit_full({shape, n, [item]}, batch)
      {^shape, count, items} when count + n <= batch -> emit_full({shape, count + n, [item | items]}, batch)
      other -> {:cont, other, {shape, n, [item]}}
    end
  end

  # A full batch goes at once, without waiting for the chunk after it.
  defp emit_full({_shape, count, _items} = acc, batch) when count >= batch, do: {:cont, acc, nil}
  defp emit_full(acc, _batch), do: {:cont, acc}

  defp flush_batch(nil), do: {:cont, nil}
  defp flush_batch(acc), do: {:cont, acc, nil}

  defp chunk!(chunk, _index, _batch) when is_binary(chunk) and rem(byte_size(chunk), 8) == 0,
    do: {:binary, chunk, div(byte_size(chunk), 8)}

  defp chunk!(chunk, index, _batch) when is_list(chunk) do
    {:list, chunk, chunk_length!(chunk, index)}
  end

  defp chunk!(chunk, index, batch) do
    # A binary of the wrong size, a range, another enumerable, or no chunk at all: run/4's checks
    # say what is wrong; a large range goes alone, as its bounds.
    {nif_data, as_list, n} =
      try do
        Args.data_n!(chunk)
      rescue
        e in ArgumentError -> reraise ArgumentError, "chunk #{index}: #{Exception.message(e)}", __STACKTRACE__
      end

    cond do
      not as_list -> {:binary, nif_data, n}
      match?({:list, _, _}, nif_data) -> {:list, elem(nif_data, 2), n}
      # A range's bounds, never joined with other chunks.
      n >= batch -> {:iota, nif_data, n}
      true -> {:list, Enum.to_list(chunk), n}
    end
  end

  defp chunk_length!(list, index) do
    :erlang.length(list)
  catch
    :error, :badarg ->
      raise ArgumentError,
            "chunk #{index} must be a proper list of integers, got an improper list: #{Args.show(list)}"
  end

  # Each batch's call starts as soon as the batch is gathered; then the previous batch's results
  # are awaited and emitted. So at most two calls are in flight (the previous one and this one),
  # and no finished result waits behind a slow one: Task.async_stream/3 bounds the tasks running
  # but not the results finished out of turn, which a slow batch would let pile up.
  defp overlap(:end, nil, _p, _mu, _opts), do: {[], nil}
  defp overlap(:end, previous, _p, _mu, _opts), do: {await!(previous), nil}

  defp overlap(batch, previous, p, mu, opts) do
    task = Task.async(fn -> batch_run(batch, p, mu, opts) end)
    {if(previous, do: await!(previous), else: []), task}
  end

  defp await!(task) do
    case Task.await(task, :infinity) do
      {:ok, results} -> results
      {:raise, exception, stacktrace} -> reraise exception, stacktrace
    end
  end

  # The consumer stopped early (Enum.take/2, or a raise): the call still in flight is not wanted.
  defp shutdown(nil), do: :ok
  defp shutdown(task), do: Task.shutdown(task, :brutal_kill)

  # In the task: the batch's results, or the exception to raise in the stream's consumer (a raise
  # here would take the consumer down with an exit instead).
  defp batch_run(batch, p, mu, opts) do
    {:ok, batch_results(batch, p, mu, opts)}
  rescue
    e -> {:raise, e, __STACKTRACE__}
  end

  defp batch_results({shape, count, reversed}, p, mu, opts) do
    items = Enum.reverse(reversed)
    where = &locate(items, &1)

    case {shape, items} do
      {_, [{data, n, _index}]} ->
        as_list = shape != :binary
        Memory.check_result!(as_list, n, fn -> "a chunk of #{n} elements" end)
        [engine_result(data, as_list, n, p, mu, opts, where)]

      {:list, items} ->
        joined = :lists.append(Enum.map(items, &elem(&1, 0)))
        split_list(engine_result(joined, true, count, p, mu, opts, where), items)

      {:binary, items} ->
        joined = IO.iodata_to_binary(Enum.map(items, &elem(&1, 0)))
        result = engine_result(joined, false, count, p, mu, opts, where)
        split_binary(result, items, 0)
    end
  end

  defp engine_result(data, as_list, n, p, mu, opts, where) do
    {result, _stats} = engine_run(data, as_list, n, p, mu, opts, where)
    result
  end

  # The chunk and the index within it of a batch's element `i`.
  defp locate([{_data, n, index} | rest], i) do
    if i < n or rest == [], do: "chunk #{index}, element at index #{i}", else: locate(rest, i - n)
  end

  defp split_list(_result, []), do: []

  defp split_list(result, [{_data, n, _index} | items]) do
    {part, rest} = Enum.split(result, n)
    [part | split_list(rest, items)]
  end

  # Each result copied out of the batch's binary: a sub-binary would keep the whole batch alive.
  defp split_binary(_result, [], _offset), do: []

  defp split_binary(result, [{_data, n, _index} | items], offset),
    do: [:binary.copy(binary_part(result, offset, n * 8)) | split_binary(result, items, offset + n * 8)]

  # ---- checks ---------------------------------------------------------------------------------------

  # run/4's and run_stats/4's usual options, none or only the iterations, skip the schema's walk
  # (about a third of a one-element call, docs/BENCHMARKS.md: small calls) and give what it
  # would: each key of @call_keys at its default, the configured ones read as Options reads them.
  defp validate!(p, mu, [], @call_keys) when Args.is_p(p) and Args.is_int64(mu),
    do: {p, mu, usual_opts(nil)}

  defp validate!(p, mu, [iterations: k], @call_keys)
       when Args.is_p(p) and Args.is_int64(mu) and Args.is_iterations(k),
       do: {p, mu, usual_opts(k)}

  defp validate!(p, mu, opts, keys) do
    opts = Options.validate!(opts, keys)
    {Args.p!(p), Args.mu!(mu), opts}
  end

  # The defaults that no configuration sets, as Options has them when this module is compiled.
  @chunk_size_default Options.default(:chunk_size)
  @phase_times_default Options.default(:phase_times)

  # The configured values are read in the order of @call_keys, so that of two bad ones the same
  # is named as on the general path; `k` nil: the iterations' default too.
  defp usual_opts(k) do
    backend = Options.default(:backend)
    device = Options.default(:device)
    k = if k == nil, do: Options.default(:iterations), else: k

    [
      backend: backend,
      device: device,
      iterations: k,
      chunk_size: @chunk_size_default,
      phase_times: @phase_times_default,
      host_share: nil
    ]
  end
end
