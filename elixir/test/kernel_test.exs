# Kernels written in Elixir: the engine's results against the kernels' own Elixir definitions, faults, compile errors.
defmodule Kiln.KernelTest.Kernels do
  @moduledoc false
  import Kiln.Kernel

  defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)
  defkernel mixed(x, a, b), do: div(x * a - -x, b) + rem(x, 1_000_003) * -3
  defkernel affine(x), do: +x * 3 + 1
  defkernel halve(x, d), do: div(x, d)
  defkernel inverse(x), do: div(1000, x)
  defkernel shift_to_min(x), do: x + -9_223_372_036_854_775_808
  defkernel collatz(x), do: if(rem(x, 2) == 0, do: div(x, 2), else: 3 * x + 1)
  defkernel guarded(x, n), do: if(x != 0 and div(n, x) > 1, do: max(x, n), else: abs(min(x, -n)))

  defkernel shaped(x, lo, hi) do
    unless x < lo or not (x <= hi) do
      if x == 0 || x == 1, do: -x, else: div(hi, x) - rem(lo, x)
    else
      x * 2
    end
  end
end

defmodule Kiln.KernelTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  alias Kiln.KernelTest.Kernels

  setup do
    seed()
    :ok
  end

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF

  # The kernels' bodies again, for the reference evaluator below.
  @bodies %{
    logistic: {quote(do: rem(mu * x * (x + 1), p)), [:p, :mu]},
    mixed: {quote(do: div(x * a - -x, b) + rem(x, 1_000_003) * -3), [:a, :b]},
    affine: {quote(do: +x * 3 + 1), []},
    halve: {quote(do: div(x, d)), [:d]},
    collatz: {quote(do: if(rem(x, 2) == 0, do: div(x, 2), else: 3 * x + 1)), []},
    guarded: {quote(do: if(x != 0 and div(n, x) > 1, do: max(x, n), else: abs(min(x, -n)))), [:n]},
    shaped:
      {quote do
         unless x < lo or not (x <= hi) do
           if x == 0 || x == 1, do: -x, else: div(hi, x) - rem(lo, x)
         else
           x * 2
         end
       end, [:lo, :hi]}
  }

  # Evaluates a kernel's body as Elixir does (left to right, only the branch taken) with big
  # integers, noting the first integer beyond int64 or zero divisor: what the engine must report.
  # Elements without a fault are also checked against the kernel's own Elixir function, which
  # ties the evaluator (and so the engine) to Elixir's semantics.
  defp reference(kernel, params, iterations, x) do
    {body, names} = @bodies[kernel]

    Enum.reduce_while(1..iterations//1, {:ok, x}, fn it, {:ok, x} ->
      env = Map.new(Enum.zip([:x | names], [x | params]))

      case catch_fault(fn -> eval(body, env) end) do
        {:ok, v} ->
          assert v == apply(Kernels, :"#{kernel}_element", [x | params])
          {:cont, {:ok, v}}

        {:fault, kind} ->
          {:halt, {:fault, kind, it}}
      end
    end)
  end

  defp catch_fault(f) do
    {:ok, f.()}
  catch
    {:fault, kind} -> {:fault, kind}
  end

  defp eval(n, _env) when is_integer(n) or is_boolean(n), do: n
  defp eval({var, _, ctx}, env) when is_atom(var) and is_atom(ctx), do: Map.fetch!(env, var)
  defp eval({:-, _, [a]}, env), do: int64!(-eval(a, env))
  defp eval({:+, _, [a]}, env), do: eval(a, env)
  defp eval({:abs, _, [a]}, env), do: int64!(abs(eval(a, env)))
  defp eval({op, _, [a]}, env) when op in [:not, :!], do: not eval(a, env)
  defp eval({op, _, [a, b]}, env) when op in [:and, :&&], do: eval(a, env) and eval(b, env)
  defp eval({op, _, [a, b]}, env) when op in [:or, :||], do: eval(a, env) or eval(b, env)

  defp eval({:if, _, [c, [do: a, else: b]]}, env), do: if(eval(c, env), do: eval(a, env), else: eval(b, env))
  defp eval({:unless, _, [c, [do: a, else: b]]}, env), do: eval({:if, [], [c, [do: b, else: a]]}, env)

  # rem of a product (or a sum or difference) by a literal or parameter whose magnitude is in
  # 1..2^32-1 is exact in the engine, as Elixir's big integers give it: the product's
  # multiplications and its factors' sums never fault, only their operands can.
  defp eval({:rem, _, [e, {m, _, ctx} = divisor]}, env) when is_atom(m) and is_atom(ctx) and m != :x do
    rem_exact(e, divisor, env)
  end

  defp eval({:rem, _, [e, divisor]}, env) when is_integer(divisor), do: rem_exact(e, divisor, env)

  defp eval({op, _, [a, b]}, env), do: checked(op, a, b, env)

  defp rem_exact({op, _, [_, _]} = e, divisor, env) when op in [:*, :+, :-] do
    m = eval(divisor, env)

    if m != 0 and abs(m) <= 0xFFFF_FFFF,
      do: rem(product(e, env), m),
      else: checked(:rem, e, divisor, env)
  end

  defp rem_exact(e, divisor, env), do: checked(:rem, e, divisor, env)

  defp product({:*, _, [a, b]}, env), do: product(a, env) * product(b, env)
  defp product({op, _, [a, b]}, env) when op in [:+, :-], do: apply(Kernel, op, [eval(a, env), eval(b, env)])
  defp product(factor, env), do: eval(factor, env)

  defp checked(op, a, b, env) do
    {a, b} = {eval(a, env), eval(b, env)}
    if op in [:div, :rem] and b == 0, do: throw({:fault, :zero})
    int64!(apply(Kernel, op, [a, b]))
  end

  defp int64!(v) when is_integer(v) and (v < @int64_min or v > @int64_max), do: throw({:fault, :overflow})
  defp int64!(v), do: v

  defp check(kernel, data, params, iterations, backend, chunk \\ 0) do
    list = if is_binary(data), do: Kiln.Binary.to_list(data), else: Enum.to_list(data)
    outcomes = Enum.map(list, &reference(kernel, params, iterations, &1))
    opts = [iterations: iterations, backend: backend, chunk_size: chunk]
    run = fn -> apply(Kernels, kernel, [data | params] ++ [opts]) end

    case Enum.find_index(outcomes, &match?({:fault, _, _}, &1)) do
      nil ->
        expected = Enum.map(outcomes, fn {:ok, v} -> v end)
        result = run.()
        expected = if is_binary(data), do: Kiln.Binary.from_list(expected), else: expected

        assert_same(result, expected, kernel: kernel, params: params, iterations: iterations, backend: backend)

        :clean

      i ->
        {:fault, kind, it} = Enum.at(outcomes, i)
        exception = if kind == :zero, do: ArithmeticError, else: ArgumentError
        error = assert_raise exception, run
        assert String.starts_with?(error.message, "element #{i} (#{Enum.at(list, i)}), iteration #{it}: ")
        :fault
    end
  end

  for backend <- [:cpu, :scalar] do
    test "#{backend}: random data and parameters, exact or the first fault" do
      backend = unquote(backend)

      outcomes =
        for round <- 1..40 do
          kernel = Enum.random([:logistic, :mixed, :affine, :halve, :collatz, :guarded, :shaped])
          {_, names} = @bodies[kernel]

          params =
            Enum.map(names, fn _ -> Enum.random([random_mu(), :rand.uniform(100) - 50, random_p()]) end)

          # Small values mostly, so that many rounds run clean; sometimes the whole int64 range.
          list =
            if rem(round, 3) == 0,
              do: random_int64s(1 + :rand.uniform(600)),
              else: Enum.map(1..(1 + :rand.uniform(3000)), fn _ -> :rand.uniform(20_001) - 10_001 end)

          data = if rem(round, 2) == 0, do: Kiln.Binary.from_list(list), else: list
          check(kernel, data, params, :rand.uniform(4) - 1, backend)
        end

      # Both outcomes were exercised.
      assert Enum.count(outcomes, &(&1 == :clean)) >= 5
      assert Enum.count(outcomes, &(&1 == :fault)) >= 5
    end
  end

  # The GPU backends compile each kernel once (per device for OpenCL, per GPU architecture for
  # CUDA, with NVRTC) and reuse it; the rounds reuse seven kernels.
  for backend <- [:opencl, :cuda] do
    describe "#{backend}" do
      @describetag skip: Kiln.TestHelper.unavailable_reason(backend)

      test "compiled kernels: exact or the first fault, across launches" do
        backend = unquote(backend)

        outcomes =
          for round <- 1..16 do
            kernel = Enum.at([:logistic, :mixed, :affine, :halve, :collatz, :guarded, :shaped], rem(round, 7))
            {_, names} = @bodies[kernel]

            params =
              Enum.map(names, fn _ -> Enum.random([random_mu(), :rand.uniform(100) - 50, random_p()]) end)

            list = Enum.map(1..(1 + :rand.uniform(3000)), fn _ -> :rand.uniform(20_001) - 10_001 end)
            list = if rem(round, 3) == 0, do: list ++ random_int64s(50), else: list
            data = if rem(round, 2) == 0, do: Kiln.Binary.from_list(list), else: list
            check(kernel, data, params, :rand.uniform(4) - 1, backend, 700)
          end

        assert :clean in outcomes and :fault in outcomes
      end

      test "the seed's map compiled for the device equals the engine's own" do
        expected = Kiln.LogisticMap.run(1..100_000, 6_700_417, 22, backend: :cpu)

        assert Kernels.logistic(1..100_000, 6_700_417, 22, iterations: 10, backend: unquote(backend)) ==
                 expected
      end
    end
  end

  describe "opencl, in a child VM" do
    @describetag skip: Kiln.TestHelper.unavailable_reason(:opencl)

    # With the VM's SIGCHLD ignored, PoCL's wait for the linker of an uncached kernel failed and
    # it aborted the VM; a child VM with an empty kernel cache shows that it no longer does.
    test "a VM with a cold OpenCL kernel cache compiles and runs kernels" do
      ebin = Path.join(Mix.Project.app_path(), "ebin")
      cache = Path.join(System.tmp_dir!(), "kiln-pocl-cache-#{System.unique_integer([:positive])}")
      File.mkdir_p!(cache)

      script = """
      defmodule ColdCache do
        import Kiln.Kernel
        defkernel twice_plus(x, c), do: x * 2 + c
      end
      IO.inspect(Kiln.LogisticMap.run(1..3, 61, 22, backend: :opencl))
      IO.inspect(ColdCache.twice_plus([1, 2, 3], 7, backend: :opencl), charlists: :as_lists)
      """

      {output, status} =
        System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", script],
          stderr_to_stdout: true,
          env: [{"POCL_CACHE_DIR", cache}]
        )

      File.rm_rf!(cache)
      assert status == 0, output
      assert output =~ "[28, 25, 37]\n[9, 11, 13]"
    end
  end

  describe "cuda, every device" do
    @describetag skip: Kiln.TestHelper.unavailable_reason(:cuda)

    test "device: :all spreads a kernel over every GPU, with the first fault by index" do
      expected = Kiln.LogisticMap.run(1..300_000, 6_700_417, 22, backend: :cpu)
      opts = [iterations: 10, backend: :cuda, device: :all, chunk_size: 4096]
      assert Kernels.logistic(1..300_000, 6_700_417, 22, opts) == expected

      data = List.duplicate(1000, 300_000) |> List.replace_at(250_000, 0) |> List.replace_at(123_457, 0)

      assert_raise ArithmeticError, "element 123457 (0), iteration 1: division by zero", fn ->
        Kernels.inverse(Kiln.Binary.from_list(data), backend: :cuda, device: :all, chunk_size: 4096)
      end
    end
  end

  test "the seed's map as a kernel equals Kiln.LogisticMap, on every shape" do
    expected = Kiln.LogisticMap.run(1..100_000, 6_700_417, 22, backend: :cpu)
    assert Kernels.logistic(1..100_000, 6_700_417, 22, iterations: 10) == expected
    assert Kernels.logistic(Enum.to_list(1..100_000), 6_700_417, 22, iterations: 10) == expected

    assert Kernels.logistic(Kiln.Binary.iota(1, 100_000), 6_700_417, 22, iterations: 10) ==
             Kiln.Binary.from_list(expected)
  end

  test "name_stats returns the result and where it ran" do
    assert {[3, 22], %{backend: :cpu, chunks: 1} = stats} = Kernels.collatz_stats([6, 7], backend: :cpu)
    assert stats.total_s >= 0 and is_binary(stats.device)

    # :auto keeps small work on the host (at most 2^24 element iterations up to 10 iterations,
    # 2^18 up to 100);
    # more goes to a GPU that compiles kernels, if any.
    assert {_, %{backend: :cpu}} = Kernels.collatz_stats(1..1000)
    {result, stats} = Kernels.collatz_stats(Kiln.Binary.iota(1, 70_000))
    assert result == Kiln.Binary.from_list(Enum.map(1..70_000, &Kernels.collatz_element/1))
    assert stats.backend == :cpu
    {result, stats} = Kernels.collatz_stats(Kiln.Binary.iota(1, 70_000), iterations: 200)
    assert result == Kernels.collatz(Kiln.Binary.iota(1, 70_000), iterations: 200, backend: :scalar)
    gpus = for d <- Kiln.devices(), d.available and d.gpu, do: d.backend
    expected = Enum.find([:cuda, :opencl], :cpu, &(&1 in gpus))
    assert stats.backend == expected
    # Beyond 10 iterations only 2^18 element iterations stay on the host.
    {_, stats} = Kernels.collatz_stats(Kiln.Binary.iota(1, 70_000), iterations: 50)
    assert stats.backend == expected
    assert {_, %{backend: :cpu}} = Kernels.collatz_stats(Kiln.Binary.iota(1, 70_000), iterations: 3)
  end

  test "negative literals, down to the int64 minimum" do
    assert Kernels.shift_to_min([0, 5, @int64_max]) == [@int64_min, @int64_min + 5, -1]

    assert_raise ArgumentError, ~r/^element 1 \(-1\), iteration 1: an intermediate value does not fit/, fn ->
      Kernels.shift_to_min([0, -1])
    end
  end

  test "a zero divisor raises ArithmeticError, as Elixir's div does" do
    assert_raise ArithmeticError, "element 1 (0), iteration 1: division by zero", fn ->
      Kernels.inverse([5, 0, 7])
    end

    # 1000 -> 1 -> 1000 -> 1 ...; 2000 -> 0, which the second iteration divides by.
    assert Kernels.inverse([1000, 1], iterations: 3) == [1, 1000]

    assert_raise ArithmeticError, "element 2 (2000), iteration 2: division by zero", fn ->
      Kernels.inverse([1000, 1, 2000], iterations: 3)
    end

    assert_raise ArithmeticError, "element 0 (5), iteration 1: division by zero", fn ->
      Kernels.halve([5, 0, 7], 0)
    end
  end

  test "bad parameters and options raise ArgumentError" do
    assert_raise ArgumentError, ~r/parameter mu must be an integer that fits in int64 or an .*1.5/, fn ->
      Kernels.logistic([1], 61, 1.5)
    end

    assert_raise ArgumentError, ~r/parameter p must be an integer that fits in int64/, fn ->
      Kernels.logistic([1], 0x8000_0000_0000_0000, 22)
    end

    # Where CUDA cannot run, a kernel asked of it says why (where it can, the cuda tests above run).
    if reason = Kiln.TestHelper.unavailable_reason(:cuda) do
      assert reason =~ "cuda unavailable"

      assert_raise ArgumentError, ~r/backend cuda is unavailable/, fn ->
        Kernels.affine([1], backend: :cuda)
      end
    end

    assert_raise ArgumentError, ~r/iterations must be a non-negative integer/, fn ->
      Kernels.affine([1], iterations: -1)
    end

    assert_raise ArgumentError, ~r/not an integer/, fn -> Kernels.affine([1, :two]) end
  end

  test "what defkernel cannot compile is a CompileError that says why" do
    for {source, message} <- [
          {"defkernel f(x), do: x / 2", "x / 2 is not supported in a kernel (/ gives a float: use div/2)"},
          {"defkernel f(x), do: x > 1", "kernel f's value must be an integer or a tuple of integers"},
          {"defkernel f(x), do: x + (x > 1)", "x > 1 is a boolean where x + (x > 1) needs an integer"},
          {"defkernel f(x), do: if(x, do: 1, else: 2)",
           "x is an integer where if's condition needs a boolean"},
          {"defkernel f(x), do: if(x > 0, do: 1)", "a kernel's if needs both do: and else:"},
          {"defkernel f(x), do: if(x > 0, do: 1, else: true)", "the branches of if must have one shape"},
          {"defkernel f(x), do: x and true", "x is an integer where x and true needs a boolean"},
          {"defkernel f(x), do: case(x, do: ({a, _} -> a))", "a kernel's case matches integer literals"},
          {"defkernel f(x), do: x + y", "unknown variable y (the variables here are x)"},
          {"defkernel f(x), do: x + 0x8000_0000_0000_0000", "does not fit in int64"},
          {"defkernel f(x), do: x - -9_223_372_036_854_775_809",
           "the literal -9223372036854775809 does not fit"},
          {"defkernel f(x, 3), do: x", "defkernel's arguments must be plain variables"},
          {"defkernel f(x, x), do: x", "defkernel's arguments must differ"},
          {"defkernel f(), do: 1", "defkernel needs at least one argument"}
        ] do
      module = "Elixir.KilnKernelCompileTest#{System.unique_integer([:positive])}"
      code = "defmodule #{module} do\n import Kiln.Kernel\n #{source}\nend"
      error = assert_raise CompileError, fn -> Code.compile_string(code) end
      assert Exception.message(error) =~ message
    end
  end
end
