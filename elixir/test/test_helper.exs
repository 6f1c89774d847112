# Test setup: which backends this machine can run (the others are skipped, saying why), and data generators.
defmodule Kiln.TestHelper do
  @moduledoc false

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF
  @max_p 0xFFFF_FFFF

  def int64_min, do: @int64_min
  def int64_max, do: @int64_max

  @backends [:scalar, :cpu, :opencl, :cuda]
  def backends, do: @backends

  @doc "nil when `backend` has an available device, else the engine's reason."
  def unavailable_reason(backend) do
    devices = Enum.filter(Kiln.devices(), &(&1.backend == backend))

    if Enum.any?(devices, & &1.available) do
      nil
    else
      "#{backend} unavailable: " <> Enum.map_join(devices, "; ", &(&1.reason || "no device"))
    end
  end

  def available?(backend), do: unavailable_reason(backend) == nil
  def available_backends, do: Enum.filter(@backends, &available?/1)

  def seed(a \\ 1, b \\ 2, c \\ 3), do: :rand.seed(:exsss, {a, b, c})

  @doc "n integers over the whole int64 range, led by the edge cases."
  def random_int64s(n) do
    specials = [@int64_min, @int64_max, 0, -1, 1, @int64_min + 1, @int64_max - 1, 0xFFFF_FFFF, -0xFFFF_FFFF]
    Enum.take(specials ++ Enum.map(1..max(n, 1), fn _ -> random_int64() end), n)
  end

  def random_int64 do
    case :rand.uniform(4) do
      # Whole range, small values, near the 32-bit boundary, near the extremes.
      1 -> :rand.uniform(0x1_0000_0000_0000_0000) - 1 + @int64_min
      2 -> :rand.uniform(2001) - 1001
      3 -> :rand.uniform(0x2_0000_0000) - 1 - 0x1_0000_0000
      4 -> Enum.random([@int64_min + :rand.uniform(1000) - 1, @int64_max - :rand.uniform(1000) + 1])
    end
  end

  def random_p do
    Enum.random([
      1,
      2,
      3,
      61,
      6_700_417,
      0x7FFF_FFFF,
      0x8000_0000,
      @max_p - 1,
      @max_p,
      :rand.uniform(@max_p),
      :rand.uniform(@max_p),
      :rand.uniform(1000)
    ])
  end

  def random_mu do
    Enum.random([
      0,
      1,
      -1,
      22,
      -22,
      @int64_min,
      @int64_max,
      random_int64(),
      random_int64(),
      -:rand.uniform(100)
    ])
  end

  @doc "A range of up to 50 elements, all in int64, with steps of any size and sign."
  def random_range do
    step = Enum.random([1, -1, 3, -7, 1_000_003, random_int64(), random_int64()])
    step = if step == 0, do: 1, else: step
    # No more elements than the int64 span allows at this step.
    count = min(:rand.uniform(51) - 1, div(@int64_max - @int64_min, abs(step)) + 1)
    span = abs(step) * max(count - 1, 0)
    offset = :rand.uniform(@int64_max - @int64_min - span + 1) - 1

    cond do
      count == 0 -> 0..-1//1
      step > 0 -> (@int64_min + offset)..(@int64_min + offset + span)//step
      true -> (@int64_max - offset)..(@int64_max - offset - span)//step
    end
  end

  def random_iterations, do: :rand.uniform(13) - 1

  @doc "Asserts equal results, reporting the first differing element instead of two huge terms."
  def assert_same(actual, expected, context) do
    if actual != expected do
      a = if is_binary(actual), do: Kiln.Binary.to_list(actual), else: actual
      e = if is_binary(expected), do: Kiln.Binary.to_list(expected), else: expected

      index = Enum.zip(a, e) |> Enum.find_index(fn {x, y} -> x != y end) || min(length(a), length(e))

      ExUnit.Assertions.flunk(
        "results differ (#{inspect(context)}): shapes #{shape(actual)} vs #{shape(expected)}, " <>
          "lengths #{length(a)} vs #{length(e)}, first difference at index #{index}: " <>
          "#{inspect(Enum.at(a, index))} vs #{inspect(Enum.at(e, index))}"
      )
    end

    true
  end

  defp shape(x) when is_binary(x), do: "binary"
  defp shape(x) when is_list(x), do: "list"
  defp shape(x), do: inspect(x)
end

for backend <- Kiln.TestHelper.backends(), reason = Kiln.TestHelper.unavailable_reason(backend) do
  IO.puts("skipping #{backend} tests: #{reason}")
end

ExUnit.start()
