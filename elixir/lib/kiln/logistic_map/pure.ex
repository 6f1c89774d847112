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
  fits, since results lie in `(-p, p)`). Any integer `p` other than 0 and any integer `mu` work.
  """

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF

  @spec run([integer] | Range.t() | binary, integer, integer, keyword) :: [integer] | binary
  def run(data, p, mu, opts \\ []) do
    opts = Keyword.validate!(opts, iterations: 10, stages: 1, variant: :loop)
    fun = step_fun!(p, mu, opts)
    stages = stages!(opts[:stages])

    case data do
      binary when is_binary(binary) ->
        if rem(byte_size(binary), 8) != 0 do
          raise ArgumentError,
                "binary size #{byte_size(binary)} bytes is not a multiple of 8 " <>
                  "(expected native-endian signed 64-bit integers)"
        end

        list = for <<x::signed-native-64 <- binary>>, do: x
        list |> map(fun, stages) |> to_int64_binary()

      list when is_list(list) ->
        check_integers!(list)
        map(list, fun, stages)

      %Range{} = range ->
        range |> Enum.to_list() |> map(fun, stages)

      other ->
        raise ArgumentError,
              "data must be a list of integers, a Range or a binary, got #{inspect(other, limit: 5)}"
    end
  end

  @doc "One step of the map."
  @spec calc(integer, integer, integer) :: integer
  def calc(x, p, mu), do: rem(mu * x * (x + 1), p)

  @doc "`num` steps of the map on `x`, as a recursive loop (the seed's `loopCalc`)."
  @spec loop_calc(non_neg_integer, integer, integer, integer) :: integer
  def loop_calc(num, x, _p, _mu) when num <= 0, do: x
  def loop_calc(num, x, p, mu), do: loop_calc(num - 1, calc(x, p, mu), p, mu)

  @doc "Ten steps of the map written out inline (the seed's `benchmarks3`)."
  @spec inlined_calc(integer, integer, integer) :: integer
  def inlined_calc(x, p, mu) do
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

  defp step_fun!(p, mu, opts) do
    unless is_integer(p) and p != 0,
      do: raise(ArgumentError, "p must be a non-zero integer, got #{inspect(p)}")

    unless is_integer(mu), do: raise(ArgumentError, "mu must be an integer, got #{inspect(mu)}")
    iterations = opts[:iterations]

    unless is_integer(iterations) and iterations >= 0 do
      raise ArgumentError, "iterations must be a non-negative integer, got #{inspect(iterations)}"
    end

    case opts[:variant] do
      :loop ->
        &loop_calc(iterations, &1, p, mu)

      :inlined when iterations == 10 ->
        &inlined_calc(&1, p, mu)

      :inlined ->
        raise ArgumentError, "variant: :inlined writes out exactly 10 steps, got iterations: #{iterations}"

      other ->
        raise ArgumentError, "variant must be :loop or :inlined, got #{inspect(other)}"
    end
  end

  defp stages!(n) when is_integer(n) and n in 1..128, do: n
  defp stages!(n), do: raise(ArgumentError, "stages must be an integer in 1..128, got #{inspect(n)}")

  defp check_integers!(list) do
    case Enum.find_index(list, &(not is_integer(&1))) do
      nil -> :ok
      i -> raise ArgumentError, "element at index #{i} is not an integer: #{inspect(Enum.at(list, i))}"
    end
  end

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
