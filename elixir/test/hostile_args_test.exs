# Property-style: every public function refuses random bad arguments with ArgumentError, and good ones still work.
Code.require_file("support/bad_values.exs", __DIR__)

defmodule Kiln.HostileArgsTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  alias Kiln.{BadValues, Binary, Buffer, Cluster, LogisticMap}
  alias Kiln.LogisticMap.Pure

  defmodule Kernels do
    import Kiln.Kernel
    defkernel affine(x, a, b), do: a * x + b
  end

  # KILN_PROPERTY_SEED=a,b,c replays another run (or searches another one); failures print the seed they ran with.
  @seed (case System.get_env("KILN_PROPERTY_SEED") do
           nil -> {20, 26, 12}
           text -> text |> String.split(",") |> Enum.map(&String.to_integer/1) |> List.to_tuple()
         end)
  # KILN_PROPERTY_ROUNDS=n runs n rounds a function instead (a longer search).
  @rounds String.to_integer(System.get_env("KILN_PROPERTY_ROUNDS", "120"))

  @run_keys [:backend, :device, :iterations, :chunk_size, :phase_times, :host_share]
  @spread_keys [:nodes, :parts, :in_flight, :timeout]
  @cluster_run_keys [:backend, :device, :iterations, :chunk_size, :host_share]
  @kernel_keys [:backend, :device, :iterations, :chunk_size]

  setup do
    {a, b, c} = @seed
    seed(a, b, c)
    :ok
  end

  # Each function: a name, how to call it with a list of arguments, and for each argument its
  # kind (which bad values it gets) and a good value.
  defp specs do
    buffer = Buffer.upload([1, 2, 3], backend: :cpu)
    data = [1, 2, 3]
    kernel = {Kernels, :affine, [3, 1]}
    cluster = [nodes: [node()]]

    [
      {"Kiln.empty_call/1", &Kiln.empty_call/1, data: data},
      {"Kiln.LogisticMap.run/4", &LogisticMap.run/4, data: data, p: 61, mu: 22, opts: {@run_keys, []}},
      {"Kiln.LogisticMap.run_stats/4", &LogisticMap.run_stats/4,
       data: data, p: 61, mu: 22, opts: {@run_keys, []}},
      {"Kiln.LogisticMap.async/4 and Kiln.await/2", &async_await/4,
       data: data, p: 61, mu: 22, opts: {@run_keys, []}},
      {"a kernel's name_async/4 and Kiln.await/2", &kernel_async_await/4,
       kernel_data: data, kernel_scalar: 3, kernel_scalar: 1, opts: {@kernel_keys, []}},
      {"Kiln.LogisticMap.run_windows/4", &LogisticMap.run_windows/4,
       data: data, p: 61, mu: 22, opts: {@run_keys ++ [:window], [window: 2]}},
      {"Kiln.LogisticMap.stream/4", &stream_to_list/4,
       chunks: [[1], [2, 3]], p: 61, mu: 22, opts: {@run_keys ++ [:batch], []}},
      {"Kiln.LogisticMap.Pure.run/4", &Pure.run/4,
       pure_data: data, pure_p: 61, integer: 22, opts: {[:iterations, :stages, :variant], []}},
      {"Kiln.LogisticMap.Pure.calc/3", &Pure.calc/3, integer: 5, pure_p: 61, integer: 22},
      {"Kiln.LogisticMap.Pure.loop_calc/4", &Pure.loop_calc/4,
       integer: 3, integer: 5, pure_p: 61, integer: 22},
      {"Kiln.LogisticMap.Pure.inlined_calc/3", &Pure.inlined_calc/3, integer: 5, pure_p: 61, integer: 22},
      {"Kiln.Buffer.upload/2", &Buffer.upload/2, data: data, opts: {[:backend, :device], [backend: :cpu]}},
      {"Kiln.Buffer.run/4", &Buffer.run/4,
       buffer: buffer, p: 61, mu: 22, opts: {[:iterations], [iterations: 0]}},
      {"Kiln.Buffer.run_stats/4", &Buffer.run_stats/4,
       buffer: buffer, p: 61, mu: 22, opts: {[:iterations], [iterations: 0]}},
      {"Kiln.Buffer.download/1", &Buffer.download/1, buffer: buffer},
      {"Kiln.Buffer.to_list/1", &Buffer.to_list/1, buffer: buffer},
      {"Kiln.Buffer.size/1", &Buffer.size/1, buffer_struct: buffer},
      {"Kiln.Binary.from_list/2", &Binary.from_list/2, list_data: data, opts: {[:endianness], []}},
      {"Kiln.Binary.to_list/2", &Binary.to_list/2, binary: Binary.from_list(data), opts: {[:endianness], []}},
      {"Kiln.Binary.iota/2", &Binary.iota/2, int64: 1, int64: 3},
      {"Kiln.Cluster.run/4", &Cluster.run/4,
       data: data, p: 61, mu: 22, opts: {@spread_keys ++ @cluster_run_keys, cluster}},
      {"Kiln.Cluster.run_stats/4", &Cluster.run_stats/4,
       data: data, p: 61, mu: 22, opts: {@spread_keys ++ @cluster_run_keys, cluster}},
      {"Kiln.Cluster.map_kernel/3", &Cluster.map_kernel/3,
       data: data, kernel: kernel, opts: {@spread_keys ++ @kernel_keys, cluster}},
      {"Kiln.Cluster.map_kernel_stats/3", &Cluster.map_kernel_stats/3,
       data: data, kernel: kernel, opts: {@spread_keys ++ @kernel_keys, cluster}}
    ]
  end

  defp async_await(data, p, mu, opts), do: data |> LogisticMap.async(p, mu, opts) |> Kiln.await()
  defp kernel_async_await(x, a, b, opts), do: x |> Kernels.affine_async(a, b, opts) |> Kiln.await()

  defp stream_to_list(chunks, p, mu, opts), do: chunks |> LogisticMap.stream(p, mu, opts) |> Enum.to_list()

  # A bad value for an argument of `kind`, and the words its error must use to name it.
  defp bad(:data), do: {BadValues.data(), ~r/data|element|binary|Range|list/}
  defp bad(:pure_data), do: {BadValues.pure_data(), ~r/data|element|binary|Range|list/}
  defp bad(:list_data), do: {pick([BadValues.data(), <<1::64>>, <<>>]), ~r/data|element|binary|Range|list/}
  defp bad(:chunks), do: {BadValues.chunks(), ~r/chunk/}
  defp bad(:p), do: {BadValues.p(), ~r/\bp\b/}
  defp bad(:pure_p), do: {BadValues.pure_p(), ~r/\bp\b/}
  defp bad(:mu), do: {BadValues.mu(), ~r/\bmu\b/}
  defp bad(:integer), do: {BadValues.non_integer(), ~r/\b(x|num|mu)\b/}
  defp bad(:int64), do: {BadValues.non_int64(), ~r/iota needs two integers/}
  defp bad(:kernel_data), do: {BadValues.data(), ~r/parameter x\b|data|element|binary|Range|list/}
  defp bad(:kernel_scalar), do: {BadValues.non_int64(), ~r/parameter (a|b)\b/}
  defp bad(:binary), do: {BadValues.non_binary(), ~r/binary/}
  defp bad(:buffer), do: {BadValues.buffer(), ~r/not a buffer made by Kiln.Buffer.upload/}
  # size/1 reads the struct without the NIF: a well-formed one around a foreign reference passes.
  defp bad(:buffer_struct),
    do: {BadValues.buffer(well_formed: false), ~r/not a buffer made by Kiln.Buffer.upload/}

  defp bad(:kernel), do: {BadValues.kernel(Kernels, :affine), ~r/kernel/}

  defp bad({:opts, keys}) do
    opts = BadValues.opts(keys)

    names =
      if Keyword.keyword?(opts),
        do: Enum.map(Keyword.keys(opts), &Atom.to_string/1) ++ ["node", "duplicate keys"],
        else: ["options must be a keyword list"]

    {opts, Regex.compile!(Enum.map_join(names, "|", &Regex.escape/1))}
  end

  defp pick(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)

  test "every public function raises ArgumentError, naming the argument, for random bad arguments" do
    for {name, fun, slots} <- specs(), round <- 1..@rounds do
      index = :rand.uniform(length(slots)) - 1
      {kind, _good} = Enum.at(slots, index)
      kind = if kind == :opts, do: {:opts, slots |> Keyword.fetch!(:opts) |> elem(0)}, else: kind
      {value, names} = bad(kind)

      args =
        slots
        |> Enum.map(fn
          {:opts, {_keys, good}} -> good
          {_kind, good} -> good
        end)
        |> List.replace_at(index, value)

      context =
        "#{name}, round #{round}, argument #{index} (#{inspect(kind)}) = #{inspect(value)}, seed #{inspect(@seed)}"

      case call(fun, args) do
        {:raised, %ArgumentError{message: message}, _stacktrace} ->
          refute message == "argument error", "#{context}: the bare ArgumentError"

          assert message =~ names,
                 "#{context}: #{inspect(message)} does not name the argument (#{inspect(names)})"

        {:raised, exception, stacktrace} ->
          flunk(
            "#{context}: raised #{inspect(exception.__struct__)} instead of ArgumentError: " <>
              Exception.format(:error, exception, stacktrace)
          )

        {:returned, result} ->
          flunk("#{context}: returned #{inspect(result, limit: 5)} instead of raising")
      end
    end
  end

  test "every exported function of the public modules, given junk for every argument, raises ArgumentError" do
    # Catches a public function the specs above do not list. Public: documented (not @doc false).
    modules = [Kiln, LogisticMap, Pure, Buffer, Binary, Cluster, Kiln.Options, Kiln.Telemetry]

    for module <- modules,
        {name, arity} <- documented_functions(module),
        arity > 0,
        round <- 1..20 do
      args = for _ <- 1..arity, do: BadValues.junk()

      case call(Function.capture(module, name, arity), args) do
        {:raised, %ArgumentError{message: message}, _} ->
          refute message == "argument error", "#{inspect(module)}.#{name}(#{inspect(args)}): bare"

        {:raised, e, st} ->
          flunk(
            "#{inspect(module)}.#{name}(#{inspect(args)}), round #{round}: " <>
              Exception.format(:error, e, st)
          )

        {:returned, result} ->
          flunk("#{inspect(module)}.#{name}(#{inspect(args)}), round #{round}: returned #{inspect(result)}")
      end
    end
  end

  test "the same functions with good arguments give the definition's results" do
    buffer_backends = Enum.filter([:scalar, :cpu, :opencl], &available?/1)

    for round <- 1..25 do
      list = random_int64s(:rand.uniform(40) - 1)
      {p, mu, n} = {random_p(), random_mu(), random_iterations()}
      expected = Pure.run(list, p, mu, iterations: n)
      binary = Binary.from_list(list)
      shapes = [list, binary, Stream.map(list, & &1), random_range()]
      context = [round: round, p: p, mu: mu, iterations: n]

      for data <- shapes do
        want = Pure.run(data, p, mu, iterations: n)
        backend = pick([:scalar, :cpu])
        assert_same(LogisticMap.run(data, p, mu, iterations: n, backend: backend), want, context)

        assert_same(
          LogisticMap.run_windows(data, p, mu, iterations: n, window: :rand.uniform(7)),
          want,
          context
        )

        assert_same(Cluster.run(data, p, mu, iterations: n, nodes: [node()], parts: 3), want, context)
        assert Kiln.empty_call(data) == if(is_binary(data), do: data, else: Enum.to_list(data))
      end

      chunks = Enum.chunk_every(list, :rand.uniform(5))
      results = chunks |> LogisticMap.stream(p, mu, iterations: n, batch: :rand.uniform(9)) |> Enum.to_list()
      assert Enum.concat(results) == expected
      assert Enum.map(results, &length/1) == Enum.map(chunks, &length/1)

      buffer = Buffer.upload(list, backend: pick(buffer_backends))
      assert Buffer.size(buffer) == length(list)
      assert buffer |> Buffer.run(p, mu, iterations: n) |> Buffer.to_list() == expected
      assert Buffer.download(buffer) == Binary.from_list(expected)

      for endianness <- [:native, :little, :big] do
        assert list |> Binary.from_list(endianness: endianness) |> Binary.to_list(endianness: endianness) ==
                 list
      end

      {a, b} = {random_int64(), random_int64()}
      kernel = {Kernels, :affine, [rem(a, 1000), rem(b, 1000)]}
      small = Enum.map(list, &rem(&1, 1_000_000))

      assert Cluster.map_kernel(small, kernel, nodes: [node()]) ==
               Enum.map(small, &(rem(a, 1000) * &1 + rem(b, 1000)))

      x = random_int64()
      assert Pure.calc(x, p, mu) == rem(mu * x * (x + 1), p)
      assert Pure.loop_calc(n, x, p, mu) == hd(Pure.run([x], p, mu, iterations: n))
      assert Pure.inlined_calc(x, p, mu) == hd(Pure.run([x], p, mu, iterations: 10))
    end
  end

  defp documented_functions(module) do
    {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(module)
    for {{:function, name, arity}, _, _, doc, _} <- docs, doc != :hidden, do: {name, arity}
  end

  defp call(fun, args) do
    {:returned, apply(fun, args)}
  rescue
    e -> {:raised, e, __STACKTRACE__}
  end
end
