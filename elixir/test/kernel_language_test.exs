# The kernel language: each construct's code (run by a model of include/kiln/kernel.hpp and by the engine) against its Elixir definition, and the compile errors.
defmodule Kiln.KernelLanguageTest.Remote do
  @moduledoc false
  import Kiln.Kernel

  defkernelp twice(x), do: x * 2
  defkernel offset(x, k), do: twice(x) + k + index()
end

defmodule Kiln.KernelLanguageTest.Kernels do
  @moduledoc false
  import Kiln.Kernel
  import Bitwise
  alias Kiln.KernelLanguageTest.Remote

  @p 61
  @steps 1..5

  defkernel add(a, b), do: a + b
  defkernel sub(a, b), do: a - b
  defkernel mul(a, b), do: Kernel.*(a, b)
  defkernel divide(a, b), do: div(a, b)
  defkernel remainder(a, b), do: rem(a, b)
  defkernel neg(a), do: -a
  defkernel absolute(a), do: abs(a)
  defkernel minmax(a, b), do: {min(a, b), Kernel.max(a, b)}

  defkernel bits(a, b),
    do: {band(a, b), bor(a, b), bxor(a, b), bnot(a), a &&& b, a ||| b, Bitwise.bxor(a, b), ~~~a}

  defkernel shift_left(a, b), do: a <<< b
  defkernel shift_right(a, b), do: Bitwise.bsr(a, b)
  defkernel shifts(a, b), do: {bsl(a, b), a >>> b}
  defkernel power(a, b), do: Integer.pow(a, b)
  defkernel power_op(a, b), do: a ** b
  defkernel square(a), do: a ** 2

  defkernel compare(a, b) do
    {if(a == b, do: 1, else: 0), if(a != b, do: 1, else: 0), if(a < b, do: 1, else: 0),
     if(a <= b, do: 1, else: 0), if(a > b, do: 1, else: 0), if(a >= b, do: 1, else: 0),
     if(a === b, do: 1, else: 0), if(a !== b, do: 1, else: 0)}
  end

  defkernel logic(a, b) do
    p = a > 0
    q = b > 0

    {if(p and q, do: 1, else: 0), if(p or q, do: 1, else: 0), if(not p, do: 1, else: 0),
     if(p && !q, do: 1, else: 0), if(p || not q, do: 1, else: 0)}
  end

  defkernel short_circuit(a, b),
    do: if(b != 0 and div(a, b) > 1, do: 1, else: if(b == 0 or rem(a, b) == 0, do: 2, else: 3))

  defkernel guarded_div(a, b), do: if(b == 0, do: 0, else: div(a, b))
  defkernel unless_k(a, b), do: unless(a < b, do: a - b, else: b - a)

  defkernel sign(a) do
    cond do
      a > 0 -> 1
      a < 0 -> -1
      true -> 0
    end
  end

  defkernel partial_cond(a) do
    cond do
      a > 10 -> a - 10
      a < -10 -> a + 10
    end
  end

  defkernel classify(a, b) do
    case rem(a, 5) do
      0 -> b
      -1 -> 100
      @p -> 61
      n when n > 2 and b > 0 -> n * b
      n when n < -2 when n == 1 -> -n
    end
  end

  defkernel with_index(x), do: x * 3 + index()

  defkernel locals(a, b) do
    x = a + 1
    y = x * b
    x = x - y
    {s, t} = {x + 1, y - 1}
    s * 2 + t
  end

  defkernel piped(a, b), do: a |> Kernel.+(b) |> abs() |> rem(7) |> max(b)
  defkernel attribute(a), do: rem(a, @p) + @p

  defkernelp poly(x, c), do: x * x + c
  defkernelp both(x), do: {poly(x, 1), poly(x, -1)}

  defkernel helpers(a, b) do
    {u, v} = both(a)
    poly(u - v, b) + Remote.offset(b, 1) + __MODULE__.add(a, 1)
  end

  defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)
  defkernel iterate(x, p, mu, k), do: Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end)
  defkernel stepped(x, first, last, step), do: Enum.reduce(first..last//step, x, fn i, acc -> acc * 3 + i end)
  defkernel attribute_range(x), do: Enum.reduce(@steps, x, fn i, acc -> acc - i end)

  defkernel fib(n, k) do
    {a, _} = Enum.reduce(1..k//1, {0, 1}, fn _, {a, b} -> {b, rem(a + b + n, 1_000_003)} end)
    a
  end

  defkernel nested(x, k) do
    Enum.reduce(0..k, {x, 0}, fn i, {s, c} ->
      inner = Enum.reduce(i..0//-1, 0, fn j, acc -> acc + j * i end)
      if rem(s + inner, 2) == 0, do: {s + inner, c + 1}, else: {s - 1, c}
    end)
  end

  defkernel three(x, y, z), do: {x + y, y * z, if(x > z, do: x, else: z)}

  # A bound computed by a loop from a scalar is still the same for every element.
  defkernel acc_bound(x, k) do
    n = Enum.reduce(1..3, k, fn _, acc -> acc + 1 end)
    Enum.reduce(0..n//1, x, fn i, a -> a + i end)
  end

  defkernelp pick(c, a, b), do: if(c, do: a, else: b)

  defkernel shapes(a, b) do
    t =
      case rem(a, 3) do
        0 -> {a, b}
        1 -> {b, a}
        n when n < 0 -> {n, -n}
      end

    u =
      cond do
        a > b -> {elem(t, 0) - 1, Kiln.Kernel.index()}
        a < b -> {elem(t, 1), pick(a > 0, a, b)}
      end

    _ = div(100, b)
    {x, y} = u
    {x + elem(t, 0), y}
  end
end

defmodule Kiln.KernelLanguageTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  import Bitwise
  alias Kiln.KernelLanguageTest.Kernels

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF

  setup do
    seed()
    :ok
  end

  # ---- a model of the kernel format -------------------------------------------------------------

  # include/kiln/kernel.hpp's semantics, word by word, on one element: {:ok, outputs}, or
  # {:fault, :arithmetic} (zero divisor, negative exponent, no clause) or {:fault, :beyond}.
  defmodule Model do
    @moduledoc false
    import Bitwise
    alias Kiln.Kernel.Ops

    def run(words, args, index) do
      code = decode(words)

      {stack, _} =
        exec(code, 0, tuple_size(code), [], %{args: List.to_tuple(args), index: index, locals: %{}})

      {:ok, Enum.reverse(stack)}
    catch
      {:fault, kind} -> {:fault, kind}
    end

    # {op, operand, jump}: if_then -> its if_else, if_else -> its if_end, loop_begin -> loop_end.
    defp decode(words) do
      instrs = split(words)

      {jumps, []} =
        instrs
        |> Enum.with_index()
        |> Enum.reduce({%{}, []}, fn
          {{op, _}, i}, {j, open} when op in [:if_then, :loop_begin] -> {j, [i | open]}
          {{:if_else, _}, i}, {j, [t | open]} -> {Map.put(j, t, i), [i | open]}
          {{op, _}, i}, {j, [t | open]} when op in [:if_end, :loop_end] -> {Map.put(j, t, i), open}
          _, acc -> acc
        end)

      instrs
      |> Enum.with_index()
      |> Enum.map(fn {{op, x}, i} -> {op, x, Map.get(jumps, i)} end)
      |> List.to_tuple()
    end

    defp split([]), do: []

    defp split([w | rest]) do
      op = Ops.name(w)
      if Ops.operand?(op), do: [{op, hd(rest)} | split(tl(rest))], else: [{op, nil} | split(rest)]
    end

    defp exec(_code, pc, stop, stack, env) when pc >= stop, do: {stack, env}

    defp exec(code, pc, stop, stack, env) do
      case {elem(code, pc), stack} do
        {{:if_then, _, else_at}, [c | s]} ->
          if c do
            {s, env} = exec(code, pc + 1, else_at, s, env)
            {_, _, end_at} = elem(code, else_at)
            exec(code, end_at + 1, stop, s, env)
          else
            exec(code, else_at + 1, stop, s, env)
          end

        {{:loop_begin, k, end_at}, [step, last, first | s]} ->
          if step == 0, do: throw({:fault, :invalid})

          env =
            Enum.reduce(first..last//step, env, fn v, env ->
              {^s, env} = exec(code, pc + 1, end_at, s, put_in(env.locals[k], v))
              env
            end)

          exec(code, end_at + 1, stop, s, env)

        {{:if_end, _, _}, _} ->
          exec(code, pc + 1, stop, stack, env)

        {{:local_set, k, _}, [v | s]} ->
          exec(code, pc + 1, stop, s, put_in(env.locals[k], v))

        {{op, x, _}, _} ->
          {s, v} = step(op, x, stack, env)
          exec(code, pc + 1, stop, [v | s], env)
      end
    end

    defp step(:arg, k, s, env), do: {s, elem(env.args, k)}
    defp step(:literal, n, s, _), do: {s, n}
    defp step(:boolean, b, s, _), do: {s, b == 1}
    defp step(:index, _, s, env), do: {s, env.index}
    defp step(:local_get, k, s, env), do: {s, Map.fetch!(env.locals, k)}
    defp step(:fail, _, _s, _), do: throw({:fault, :arithmetic})
    defp step(:neg, _, [a | s], _), do: {s, int64(-a)}
    defp step(:abs, _, [a | s], _), do: {s, int64(abs(a))}
    defp step(:bnot, _, [a | s], _), do: {s, bnot(a)}
    defp step(:logical_not, _, [a | s], _), do: {s, not a}
    defp step(op, _, [b, a | s], _), do: {s, binary(op, a, b)}

    defp binary(op, _, 0) when op in [:div, :rem], do: throw({:fault, :arithmetic})
    defp binary(:pow, _, b) when b < 0, do: throw({:fault, :arithmetic})
    defp binary(:pow, a, b) when abs(a) > 1 and b > 64, do: throw({:fault, :beyond})
    defp binary(:bsl, a, b) when b > 64 and a != 0, do: throw({:fault, :beyond})
    defp binary(:bsr, a, b) when b < -64 and a != 0, do: throw({:fault, :beyond})
    defp binary(:bsl, a, b) when b < -64, do: if(a < 0, do: -1, else: 0)
    defp binary(:bsr, a, b) when b > 64, do: if(a < 0, do: -1, else: 0)

    defp binary(op, a, b) do
      case op do
        :add -> a + b
        :sub -> a - b
        :mul -> a * b
        :div -> div(a, b)
        :rem -> rem(a, b)
        :min -> min(a, b)
        :max -> max(a, b)
        :pow -> Integer.pow(a, b)
        :band -> band(a, b)
        :bor -> bor(a, b)
        :bxor -> bxor(a, b)
        :bsl -> bsl(a, b)
        :bsr -> bsr(a, b)
        :eq -> a == b
        :ne -> a != b
        :lt -> a < b
        :le -> a <= b
        :gt -> a > b
        :ge -> a >= b
      end
      |> int64()
    end

    defp int64(v) when is_integer(v) and (v < -0x8000_0000_0000_0000 or v > 0x7FFF_FFFF_FFFF_FFFF),
      do: throw({:fault, :beyond})

    defp int64(v), do: v
  end

  # ---- what Elixir says -------------------------------------------------------------------------

  defp definition(name), do: Kernels.__kiln_kernel__({name, arity(name)})

  defp arity(name) do
    Enum.find(1..8, &Kernels.__kiln_kernel__({name, &1}))
  end

  # Elixir's outcome for one element: {:ok, outputs} where every output fits, {:fault, :beyond}
  # where one does not, {:fault, :arithmetic} where Elixir raises.
  defp elixir(name, args, index) do
    d = definition(name)
    element_args = if d.uses_index, do: args ++ [index], else: args
    value = apply(Kernels, :"#{name}_element", element_args)
    outputs = if is_tuple(value), do: Tuple.to_list(value), else: [value]

    if Enum.all?(outputs, &(&1 >= @int64_min and &1 <= @int64_max)),
      do: {:ok, outputs},
      else: {:fault, :beyond}
  rescue
    _ in [ArithmeticError, CondClauseError, CaseClauseError] -> {:fault, :arithmetic}
    # A range of step 0.
    _ in ArgumentError -> {:fault, :invalid}
  end

  defp small, do: :rand.uniform(41) - 21
  defp medium, do: :rand.uniform(20_001) - 10_001

  defp edge,
    do: Enum.random([0, -1, 1, @int64_min, @int64_max, @int64_min + 1, @int64_max - 1, random_int64()])

  # name => generator of one element's arguments. Edge values only where no intermediate value
  # can go beyond int64 unless the result does (a fault Elixir would not have).
  defp cases do
    %{
      add: fn -> [edge(), edge()] end,
      sub: fn -> [edge(), edge()] end,
      mul: fn -> [edge(), Enum.random([edge(), small()])] end,
      divide: fn -> [edge(), Enum.random([edge(), small(), 0, -1])] end,
      remainder: fn -> [edge(), Enum.random([edge(), small(), 0, -1])] end,
      neg: fn -> [edge()] end,
      absolute: fn -> [edge()] end,
      minmax: fn -> [edge(), edge()] end,
      bits: fn -> [edge(), edge()] end,
      shift_left: fn -> [Enum.random([edge(), small()]), Enum.random([small(), :rand.uniform(140) - 70])] end,
      shift_right: fn -> [Enum.random([edge(), small()]), Enum.random([small(), :rand.uniform(140) - 70])] end,
      shifts: fn -> [small(), small()] end,
      power: fn -> [Enum.random([small(), edge(), -1, 0, 1]), Enum.random([:rand.uniform(70) - 3, 0])] end,
      power_op: fn -> [small(), :rand.uniform(20) - 1] end,
      square: fn -> [Enum.random([edge(), 3_037_000_499, -3_037_000_500, medium()])] end,
      compare: fn -> [edge(), edge()] end,
      logic: fn -> [small(), small()] end,
      short_circuit: fn -> [medium(), Enum.random([0, small()])] end,
      guarded_div: fn -> [medium(), Enum.random([0, small()])] end,
      unless_k: fn -> [medium(), medium()] end,
      sign: fn -> [edge()] end,
      partial_cond: fn -> [small()] end,
      classify: fn -> [medium(), small()] end,
      with_index: fn -> [medium()] end,
      locals: fn -> [medium(), medium()] end,
      piped: fn -> [Enum.random([medium(), @int64_max - 30, @int64_min + 30]), small()] end,
      attribute: fn -> [edge()] end,
      helpers: fn -> [medium(), medium()] end,
      logistic: fn -> [medium(), Enum.random([61, 6_700_417, 0xFFFF_FFFF, small()]), medium()] end,
      iterate: fn -> [small(), 61, 22, :rand.uniform(8) - 3] end,
      stepped: fn -> [small(), small(), small(), Enum.random([1, 2, -1, -3, 0])] end,
      attribute_range: fn -> [medium()] end,
      fib: fn -> [medium(), :rand.uniform(30) - 3] end,
      nested: fn -> [medium(), :rand.uniform(8) - 3] end,
      three: fn -> [medium(), medium(), medium()] end,
      shapes: fn -> [medium(), Enum.random([medium(), 0, small()])] end,
      acc_bound: fn -> [medium(), small()] end
    }
  end

  test "every construct's code computes what its Elixir definition does, faults included" do
    for {name, gen} <- cases() do
      words = definition(name).compiled.words

      outcomes =
        for i <- 0..149 do
          args = gen.()
          expected = elixir(name, args, i)
          assert Model.run(words, args, i) == expected, "#{name}#{inspect(List.to_tuple(args))} at #{i}"
          elem(expected, 0)
        end

      assert :ok in outcomes, "#{name}: no clean element"
    end
  end

  test "faults that Elixir raises are exercised" do
    for {name, args} <- [
          divide: [1, 0],
          remainder: [@int64_min, 0],
          power: [2, -1],
          partial_cond: [3],
          classify: [12, -3]
        ] do
      assert elixir(name, args, 0) == {:fault, :arithmetic}
      assert Model.run(definition(name).compiled.words, args, 0) == {:fault, :arithmetic}
    end

    for {name, args} <- [
          add: [@int64_max, 1],
          neg: [@int64_min],
          divide: [@int64_min, -1],
          square: [3_037_000_500]
        ] do
      assert elixir(name, args, 0) == {:fault, :beyond}
      assert Model.run(definition(name).compiled.words, args, 0) == {:fault, :beyond}
    end
  end

  test "the shapes of compiled kernels" do
    assert %{outputs: 8, locals: 0} = definition(:bits).compiled
    assert %{outputs: 3} = definition(:three).compiled
    assert definition(:with_index).uses_index and definition(:helpers).uses_index
    refute definition(:add).uses_index
    # The op numbers come from the header: arg 0, arg 1, add.
    assert definition(:add).compiled.words == [0, 0, 0, 1, Kiln.Kernel.Ops.number!(:add)]
    assert function_exported?(Kernels, :with_index_element, 2)
    assert function_exported?(Kernels, :add_element, 2) and function_exported?(Kernels, :add_stats, 3)
  end

  # ---- the engine -------------------------------------------------------------------------------

  # Arguments that are loop bounds must be scalars at the call.
  @scalar_only %{iterate: [1, 2, 3], stepped: [1, 2, 3], fib: [1], nested: [1], acc_bound: [1]}

  # One run of `name` over n elements, each argument an array or a scalar, against Elixir:
  # {:ok | :fault, element checks} (every element of a clean run, the first fault's index as one).
  defp engine_check(name, n, backend) do
    gen = Map.fetch!(cases(), name)
    rows = for _ <- 1..n, do: gen.()
    count = length(hd(rows))
    only = Map.get(@scalar_only, name, [])
    # The GPU backends stream kernels of one array argument (the first) for now.
    gpu = backend in [:opencl, :cuda]
    scalar? = for k <- 0..(count - 1), do: k in only or (k > 0 and (gpu or :rand.uniform(3) == 1))
    first = hd(rows)

    # Each element's arguments: its own row, with the scalars taken from the first.
    element_rows = for row <- rows, do: Enum.zip_with([row, first, scalar?], fn [v, f, s?] -> if s?, do: f, else: v end)

    columns =
      for {s?, k} <- Enum.with_index(scalar?) do
        if s?, do: Enum.at(first, k), else: Enum.map(rows, &Enum.at(&1, k))
      end

    binary? = :rand.uniform(2) == 1

    call_args =
      Enum.map(columns, fn c -> if is_list(c) and binary?, do: Kiln.Binary.from_list(c), else: c end)

    outcomes = element_rows |> Enum.with_index() |> Enum.map(fn {args, i} -> elixir(name, args, i) end)
    run = fn -> apply(Kernels, name, call_args ++ [[backend: backend]]) end

    case Enum.find_index(outcomes, &match?({:fault, _}, &1)) do
      nil ->
        outputs = outcomes |> Enum.map(fn {:ok, o} -> o end) |> Enum.zip() |> Enum.map(&Tuple.to_list/1)
        outputs = if binary?, do: Enum.map(outputs, &Kiln.Binary.from_list/1), else: outputs
        expected = if length(outputs) == 1, do: hd(outputs), else: List.to_tuple(outputs)
        assert run.() == expected, "#{name} on #{backend}"
        {:ok, n}

      i ->
        exception = if Enum.at(outcomes, i) == {:fault, :arithmetic}, do: ArithmeticError, else: ArgumentError
        error = assert_raise exception, run
        assert error.message =~ ~r/\b#{i}\b/, "#{name} on #{backend}: #{error.message}"
        {:fault, 1}
    end
  end

  # Every construct in turn, runs of lengths spread from 1 to 4096 (short ones are often clean
  # where long ones would fault), until `goal` element checks; returns the outcomes seen.
  defp checks_until(goal, backend, names) do
    Stream.cycle(names)
    |> Enum.reduce_while({0, MapSet.new(), 0}, fn name, {checks, seen, runs} ->
      n = Enum.random([1 + :rand.uniform(8), 8 + :rand.uniform(56), 64 + :rand.uniform(448), 512 + :rand.uniform(3584)])
      {outcome, c} = engine_check(name, n, backend)
      acc = {checks + c, MapSet.put(seen, {name, outcome}), runs + 1}
      if checks + c >= goal or runs + 1 >= 20_000, do: {:halt, acc}, else: {:cont, acc}
    end)
  end

  for backend <- [:cpu, :scalar] do
    test "#{backend}: every construct, arrays and scalars, against its Elixir definition" do
      outcomes =
        for name <- Map.keys(cases()),
            _ <- 1..3,
            do: elem(engine_check(name, 1 + :rand.uniform(300), unquote(backend)), 0)

      assert :ok in outcomes and :fault in outcomes
    end
  end

  # A million element checks per backend over every construct (the GPU backends: those of one
  # output, in their pipelines' shape), each against Elixir's own outcome.
  for backend <- [:cpu, :scalar, :opencl, :cuda] do
    @tag :slow
    @tag timeout: 600_000
    @tag skip: Kiln.TestHelper.unavailable_reason(backend)
    test "#{backend}: a million element checks over every construct, against Elixir" do
      backend = unquote(backend)
      names = for name <- Enum.sort(Map.keys(cases())), backend in [:cpu, :scalar] or definition(name).compiled.outputs == 1, do: name
      {checks, seen, runs} = checks_until(1_000_000, backend, names)
      IO.puts("[ #{backend} ] #{checks} element checks in #{runs} runs over #{length(names)} constructs")
      assert checks >= 1_000_000
      # Every construct ran clean at least once.
      for name <- names, do: assert({name, :ok} in seen, "#{name} never ran clean on #{backend}")
    end
  end

  # Compiled for the device: the kernels of one output, with one array (the GPU pipelines' shape).
  for backend <- [:opencl, :cuda] do
    @tag :slow
    @tag skip: Kiln.TestHelper.unavailable_reason(backend)
    test "#{backend}: every construct of one output, compiled for the device, against Elixir" do
      outcomes =
        for name <- Map.keys(cases()),
            definition(name).compiled.outputs == 1,
            do: elem(engine_check(name, 1 + :rand.uniform(300), unquote(backend)), 0)

      assert :ok in outcomes and :fault in outcomes
    end
  end

  test "the old API: one array, scalars and iterations" do
    assert Kernels.logistic(1..3, 61, 22, iterations: 10) == [28, 25, 37]
    assert Kernels.iterate(1..3, 61, 22, 10) == [28, 25, 37]

    assert Kernels.logistic(Kiln.Binary.iota(1, 1000), 6_700_417, 22, iterations: 5) ==
             Kiln.Binary.from_list(Kiln.LogisticMap.run(1..1000, 6_700_417, 22, iterations: 5, backend: :cpu))

    assert Kernels.three([1, 2], [3, 4], 5) == {[4, 6], [15, 20], [5, 5]}
    assert Kernels.with_index(Kiln.Binary.from_list([10, 20, 30])) == Kiln.Binary.from_list([30, 61, 92])
    assert {[3], %{backend: :cpu}} = Kernels.add_stats([1], 2, backend: :cpu)

    # index() counts in the whole array, across the blocks and threads that share it.
    n = 100_000
    expected = Kiln.Binary.from_list(for i <- 0..(n - 1), do: Kernels.with_index_element(i - 7, i))

    for backend <- Kiln.TestHelper.available_backends() do
      assert Kernels.with_index(Kiln.Binary.iota(-7, n - 8), backend: backend) == expected, "#{backend}"
    end
  end

  test "bad arguments raise ArgumentError before the engine" do
    assert_raise ArgumentError, ~r/at least one array argument/, fn -> Kernels.add(1, 2) end

    assert_raise ArgumentError, ~r/parameter b must be an integer that fits in int64/, fn ->
      Kernels.add([1], 1 <<< 64)
    end

    assert_raise ArgumentError, ~r/parameter b must be an integer .* or an array/, fn ->
      Kernels.add([1], 1.5)
    end

    assert_raise ArgumentError, ~r/iterations: applies a kernel of one array argument/, fn ->
      Kernels.add([1], [2], iterations: 2)
    end

    assert_raise ArgumentError, ~r/iterations: applies/, fn -> Kernels.minmax([1], 2, iterations: 2) end

    assert_raise ArgumentError, ~r/iterations must be a non-negative integer/, fn ->
      Kernels.add([1], 2, iterations: -1)
    end

    assert_raise ArgumentError, ~r/unknown keys \[:bogus\]/, fn -> Kernels.add([1], 2, bogus: 1) end
  end

  # ---- compile errors ---------------------------------------------------------------------------

  @file_name "kernel_errors.exs"

  # {kernel source (its defkernel on line 4), message, line of the offending expression}.
  @errors [
    {"defkernel f(x), do: x / 2", "x / 2 is not supported in a kernel (/ gives a float: use div/2)", 4},
    {"defkernel f(x), do: x > 1", "kernel f's value must be an integer or a tuple of integers", 4},
    {"defkernel f(x) do\n  y = x + 1\n  y + (y > 1)\nend",
     "y > 1 is a boolean where y + (y > 1) needs an integer", 6},
    {"defkernel f(x), do: if(x, do: 1, else: 2)", "x is an integer where if's condition needs a boolean", 4},
    {"defkernel f(x) do\n  if x > 0 do\n    1\n  end\nend", "a kernel's if needs both do: and else:", 5},
    {"defkernel f(x), do: if(x > 0, do: 1, else: true)", "the branches of if must have one shape", 4},
    {"defkernel f(x), do: x and true", "x is an integer where x and true needs a boolean", 4},
    {"defkernel f(x), do: x + y", "unknown variable y (the variables here are x)", 4},
    {"defkernel f(x), do: x + 0x8000_0000_0000_0000", "the literal 9223372036854775808 does not fit in int64",
     4},
    {"defkernel f(x), do: x ** -1", "has the negative exponent -1", 4},
    {"defkernel f(x), do: Integer.pow(x, -2)", "negative exponent -2", 4},
    {"defkernel f(x), do: Enum.map(x, & &1)", "Enum.map/2 is not a kernel defined with defkernel", 4},
    {"defkernel f(x), do: g(x)", "g(x) is not supported in a kernel: g/1 is neither", 4},
    {"defkernel f(x) do\n  Enum.reduce(1..index(), x, fn i, acc -> acc + i end)\nend",
     "depends on the element (index())", 5},
    {"defkernel f(x) do\n  k = x * 0 + index()\n  Enum.reduce(0..k, x, fn i, acc -> acc + i end)\nend",
     "a loop's bounds must be the same for every element", 6},
    {"defkernel f(x), do: Enum.reduce(1..3//0, x, fn i, acc -> acc + i end)", "has step 0", 4},
    {"defkernel f(x, k) do\n  n = Enum.reduce(1..3, k, fn _, acc -> acc + index() end)\n  Enum.reduce(0..n//1, x, fn i, a -> a + i end)\nend",
     "the range 0..n//1 depends on the element (n)", 6},
    {"defkernel f(x), do: Enum.reduce(1..3, x, fn _, acc -> acc > 0 end)", "accumulator must keep its shape",
     4},
    {"defkernel f(x), do: Enum.reduce(1..3, {x, x}, fn _, {a, b, c} -> {a, b, c} end)",
     "the accumulator pattern {a, b, c}", 4},
    {"defkernel f(x), do: Enum.reduce([1, 2], x, fn i, acc -> acc + i end)",
     "runs over a range written first..last", 4},
    {"defkernel f(x) do\n  case x do\n    {a, b} -> a + b\n  end\nend",
     "a kernel's case matches integer literals", 6},
    {"defkernel f(x) do\n  case x do\n    y when div(10, y) > 1 -> y\n    _ -> 0\n  end\nend",
     "in a guard: Elixir treats a division by zero", 6},
    {"defkernel f(x), do: @q + x", "@q is nil; a kernel reads module attributes that are integers", 4},
    {"defkernel f(x), do: 1.5 * x", "1.5 is a float", 4},
    {"defkernel f(x, 3), do: x", "defkernel's arguments must be plain variables", 4},
    {"defkernel f(x, x), do: x", "defkernel's arguments must differ", 4},
    {"defkernel f(), do: 1", "defkernel needs at least one argument", 4},
    {"defkernel f(x) when x > 0, do: x", "a kernel's head takes no guard", 4},
    {"defkernel f(x), do: later(x)\ndefkernel later(x), do: x", "calls a kernel defined after this one", 4},
    {"defkernel f(x), do: x\ndefkernel f(y), do: y", "kernel f/1 is already defined", 5},
    {"defkernel f(x) do\n  {a, b} = x\n  a + b\nend", "the pattern {a, b} does not match the value's shape",
     5},
    {"defkernel f(x), do: {x, {x, x}}", "tuples hold integers and booleans, not tuples", 4},
    {"defkernel f(x, k) do\n  n = if x > 0, do: k, else: k + 1\n  m = if(k > 0, do: (j = k + 1; Enum.reduce(1..j, 0, fn i, a -> a + i end)), else: n)\n  m + n\nend",
     "a loop's bounds must be the same for every element", 6},
    {"defkernel f(x) do\n  case x > 0 do\n    1 -> 1\n    _ -> 0\n  end\nend", "for a boolean", 6},
    {"defkernel f(x), do: x == true", "true is a boolean where x == true needs an integer", 4},
    {"defkernel f(x), do: fn -> x end", "a kernel cannot make functions", 4},
    {"defkernel f(x), do: div(x, 0.5)", "0.5 is a float", 4}
  ]

  defp compile_kernel_source(source) do
    module = "KilnKernelLanguageErrors#{System.unique_integer([:positive])}"

    code =
      "defmodule #{module} do\n  import Kiln.Kernel\n  import Bitwise, warn: false\n" <>
        indent(source) <> "\nend\n"

    Code.compile_string(code, @file_name)
  end

  defp indent(source), do: source |> String.split("\n") |> Enum.map_join("\n", &("  " <> &1))

  test "what a kernel cannot run is a CompileError at its file and line that says why" do
    for {source, message, line} <- @errors do
      error = assert_raise CompileError, fn -> compile_kernel_source(source) end
      assert error.description =~ message, "#{source}: #{error.description}"
      assert error.file =~ @file_name
      assert {source, error.line} == {source, line}
    end
  end

  test "kernels beyond the engine's limits do not compile" do
    deep = Enum.reduce(1..70, "x", fn _, acc -> "(x + #{acc})" end)
    error = assert_raise CompileError, fn -> compile_kernel_source("defkernel f(x), do: #{deep}") end
    assert error.description =~ "values on its stack at once; the engine allows 64 (kernel_max_depth)"

    nested = Enum.reduce(1..33, "x", fn i, acc -> "if(x > #{i}, do: #{acc}, else: 0)" end)
    error = assert_raise CompileError, fn -> compile_kernel_source("defkernel f(x), do: #{nested}") end
    assert error.description =~ "(kernel_max_nesting)"

    bindings = Enum.map_join(1..257, "\n", &"  x = x + #{&1}")

    error =
      assert_raise CompileError, fn -> compile_kernel_source("defkernel f(x) do\n#{bindings}\n  x\nend") end

    assert error.description =~ "257 local slots" and error.description =~ "(kernel_max_locals)"

    long = Enum.map_join(1..1400, " + ", fn _ -> "x" end)
    error = assert_raise CompileError, fn -> compile_kernel_source("defkernel f(x), do: #{long}") end
    assert error.description =~ "words of code; Kiln allows 4096"

    outputs = Enum.map_join(1..17, ", ", fn _ -> "x" end)
    error = assert_raise CompileError, fn -> compile_kernel_source("defkernel f(x), do: {#{outputs}}") end
    assert error.description =~ "17 outputs; the engine allows 16"
  end

  test "a kernel compiles without warnings, keeps its @doc and takes underscored arguments" do
    source = """
    @doc "Adds."
    defkernel f(x, _unused, opts), do: x + opts + index()
    defkernelp h(x), do: x
    defkernel g(x), do: h(x) |> f(1, 2)
    """

    # mix test compiles without docs; this module needs its docs chunk.
    docs = Code.get_compiler_option(:docs)
    Code.put_compiler_option(:docs, true)
    on_exit(fn -> Code.put_compiler_option(:docs, docs) end)

    output =
      ExUnit.CaptureIO.capture_io(:stderr, fn ->
        [{module, binary}] = compile_kernel_source(source)
        {:docs_v1, _, _, _, _, _, docs} = Code.fetch_docs(write_beam(module, binary))
        assert [%{"en" => "Adds."}] = for({{:function, :f, 4}, _, _, doc, _} <- docs, do: doc)
        assert apply(module, :g_element, [5, 7]) == 5 + 2 + 7
      end)

    assert output == ""
  end

  defp write_beam(module, binary) do
    dir = Path.join(System.tmp_dir!(), "kiln-kernel-docs-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    path = Path.join(dir, "#{module}.beam")
    File.write!(path, binary)
    path
  end
end
