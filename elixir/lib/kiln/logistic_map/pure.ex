# The logistic map in plain Elixir: the definition every backend is tested against, and the seed's baselines.
defmodule Kiln.LogisticMap.Pure do
  @moduledoc """
  The logistic map `x <- rem(mu * x * (x + 1), p)` in plain Elixir, with unbounded integers.

  This is the definition the engine's backends must match exactly, and the pure-Elixir baseline
  of the seed's benchmarks: `variant: :loop` is `benchmarks1` (a recursive loop per element),
  `variant: :inlined` is `benchmarks3` (the ten steps written out).

      iex> Kiln.LogisticMap.Pure.run(1..3, 61, 22)
      [28, 25, 37]

  ## Options

    * `:iterations` - how many times the map is applied (default `10`).
    * `:stages` - `1..128` (default `1`). Above 1 the input is split into `stages` contiguous
      parts, each mapped by its own `Task`, and the results are concatenated in order (the
      seed used Flow's stages; Flow is not available here).
    * `:variant` - `:loop` (default) or `:inlined`; `:inlined` needs `iterations: 10`.

  Data is a list of integers, a `Range` (giving a list) or a binary of native-endian int64
  (giving a binary, so every result must fit in int64: it does when `iterations >= 1` and `p`
  fits, since results lie in `(-p, p)`), or any other `Enumerable` of integers (a `Stream`,
  giving a list). Any integer `p` other than 0 and any integer `mu` work.

  `:iterations` takes its default from `config :kiln, iterations: ...` where that is set, as
  `Kiln.LogisticMap` does (see `Kiln.Options`), so that both compute the same map by default.
  Bad arguments raise `ArgumentError` naming them, in `run/4` as in `calc/3`, `loop_calc/4` and
  `inlined_calc/3`.
  """

  alias Kiln.{Args, Memory, Options}

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF

  @doc """
  Applies the map to every element of `data` in plain Elixir; see the module doc for the data
  and the options.

      iex> Kiln.LogisticMap.Pure.run([1, 2, 3], 61, 22, iterations: 1, stages: 2)
      [44, 10, 20]
  """
  @spec run(Enumerable.t() | binary, integer, integer, keyword) :: [integer] | binary
  def run(data, p, mu, opts \\ []) do
    opts = Options.validate!(opts, [:iterations, :stages, :variant])
    fun = step_fun!(p, mu, opts)
    stages = opts[:stages]

    case data do
      binary when is_binary(binary) ->
        if rem(byte_size(binary), 8) != 0 do
          raise ArgumentError,
                "binary size #{byte_size(binary)} bytes is not a multiple of 8 " <>
                  "(expected native-endian signed 64-bit integers)"
        end

        # The list of inputs, the list of results and the binary.
        n = div(byte_size(binary), 8)

        Memory.check!(2 * Memory.list_bytes(n) + Memory.int64_bytes(n), fn ->
          "Pure.run over #{n} elements"
        end)

        list = for <<x::signed-native-64 <- binary>>, do: x
        list |> map(fun, stages) |> to_int64_binary()

      list when is_list(list) ->
        n = Args.proper_length!(list, "data")
        Memory.check!(Memory.list_bytes(n), fn -> "Pure.run over #{n} elements" end)
        check_integers!(list, 0)
        map(list, fun, stages)

      %Range{first: first, last: last, step: step} = range
      when is_integer(first) and is_integer(last) and is_integer(step) and step != 0 ->
        n = Range.size(range)
        Memory.check!(2 * Memory.list_bytes(n), fn -> "Pure.run over #{inspect(range)}" end)
        range |> Enum.to_list() |> map(fun, stages)

      %Range{} = range ->
        raise ArgumentError,
              "data is not a valid Range (integer first, last and a non-zero step): #{Args.show(range)}"

      other ->
        if Args.enumerable?(other) do
          list = Args.enum_to_list!(other, "data")
          check_integers!(list, 0)
          map(list, fun, stages)
        else
          raise ArgumentError,
                "data must be a list of integers, a Range or a binary (or another Enumerable of integers), " <>
                  "got #{Args.show(other)}"
        end
    end
  end

  @doc "One step of the map."
  @spec calc(integer, integer, integer) :: integer
  def calc(x, p, mu) when is_integer(x) and is_integer(p) and p != 0 and is_integer(mu), do: step(x, p, mu)
  def calc(x, p, mu), do: bad_args!(x, p, mu, "calc(x, p, mu)")

  @doc "`num` steps of the map on `x`, as a recursive loop (the seed's `loopCalc`); `x` itself when `num <= 0`."
  @spec loop_calc(integer, integer, integer, integer) :: integer
  def loop_calc(num, x, p, mu)
      when is_integer(num) and is_integer(x) and is_integer(p) and p != 0 and is_integer(mu),
      do: loop(num, x, p, mu)

  def loop_calc(num, _x, _p, _mu) when not is_integer(num),
    do: raise(ArgumentError, "loop_calc's num must be an integer, got #{Args.show(num)}")

  def loop_calc(_num, x, p, mu), do: bad_args!(x, p, mu, "loop_calc(num, x, p, mu)")

  @doc "Ten steps of the map written out inline (the seed's `benchmarks3`)."
  @spec inlined_calc(integer, integer, integer) :: integer
  def inlined_calc(x, p, mu) when is_integer(x) and is_integer(p) and p != 0 and is_integer(mu),
    do: inlined(x, p, mu)

  def inlined_calc(x, p, mu), do: bad_args!(x, p, mu, "inlined_calc(x, p, mu)")

  # The unchecked bodies: run/4 checks once, not once an element.
  defp step(x, p, mu), do: rem(mu * x * (x + 1), p)

  defp loop(num, x, _p, _mu) when num <= 0, do: x
  defp loop(num, x, p, mu), do: loop(num - 1, step(x, p, mu), p, mu)

  defp inlined(x, p, mu) do
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    x = rem(mu * x * (x + 1), p)
    rem(mu * x * (x + 1), p)
  end

  defp bad_args!(x, p, mu, call) do
    {name, value, expected} =
      cond do
        not is_integer(x) -> {"x", x, "an integer"}
        not is_integer(p) or p == 0 -> {"p", p, "a non-zero integer"}
        true -> {"mu", mu, "an integer"}
      end

    raise ArgumentError, "#{call}: #{name} must be #{expected}, got #{Args.show(value)}"
  end

  defp step_fun!(p, mu, opts) do
    unless is_integer(p) and p != 0,
      do: raise(ArgumentError, "p must be a non-zero integer, got #{Args.show(p)}")

    unless is_integer(mu), do: raise(ArgumentError, "mu must be an integer, got #{Args.show(mu)}")
    iterations = opts[:iterations]

    case opts[:variant] do
      :loop ->
        &loop(iterations, &1, p, mu)

      :inlined when iterations == 10 ->
        &inlined(&1, p, mu)

      :inlined ->
        raise ArgumentError, "variant: :inlined writes out exactly 10 steps, got iterations: #{iterations}"
    end
  end

  # The list is proper (its length was taken); the first element that is not an integer, if any.
  defp check_integers!([], _i), do: :ok
  defp check_integers!([x | rest], i) when is_integer(x), do: check_integers!(rest, i + 1)

  defp check_integers!([x | _], i),
    do: raise(ArgumentError, "element at index #{i} is not an integer: #{Args.show(x)}")

  defp map(list, fun, 1), do: Enum.map(list, fun)

  defp map(list, fun, stages) do
    list
    |> split(length(list), stages)
    |> Enum.map(fn part -> Task.async(fn -> Enum.map(part, fun) end) end)
    |> Task.await_many(:infinity)
    |> Enum.concat()
  end

  # `stages` contiguous parts whose lengths differ by at most one (some empty if the list is short).
  defp split(_list, _len, 0), do: []

  defp split(list, len, stages) do
    {part, rest} = Enum.split(list, div(len + stages - 1, stages))
    [part | split(rest, len - length(part), stages - 1)]
  end

  defp to_int64_binary(list) do
    for {x, i} <- Enum.with_index(list), into: <<>> do
      unless x >= @int64_min and x <= @int64_max do
        raise ArgumentError, "result at index #{i} does not fit in int64: #{x}"
      end

      <<x::signed-native-64>>
    end
  end
end
