# Argument checks shared by Kiln's public modules, and the mapping of NIF errors to exceptions.
defmodule Kiln.Args do
  @moduledoc false

  # Checking here, before the NIF, gives messages that name the Elixir value and keeps bad input
  # from ever reaching the native code's decoders.

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF
  @max_p 0xFFFF_FFFF
  @backends [:auto, :scalar, :cpu, :opencl, :cuda]

  defguard is_int64(x) when is_integer(x) and x >= @int64_min and x <= @int64_max

  def int64_min, do: @int64_min
  def int64_max, do: @int64_max
  def max_p, do: @max_p

  def p!(p) when is_integer(p) and p >= 1 and p <= @max_p, do: p

  def p!(p) do
    raise ArgumentError, "p must be an integer in 1..4294967295 (2^32 - 1), got #{inspect(p)}"
  end

  def mu!(mu) when is_int64(mu), do: mu

  def mu!(mu) do
    raise ArgumentError, "mu must be an integer that fits in int64, got #{inspect(mu)}"
  end

  def iterations!(n) when is_integer(n) and n >= 0 and n <= @int64_max, do: n

  def iterations!(n) do
    raise ArgumentError, "iterations must be a non-negative integer, got #{inspect(n)}"
  end

  def backend!(b) when b in @backends, do: b

  def backend!(b) do
    raise ArgumentError,
          "unknown backend #{inspect(b)} (expected :auto, :scalar, :cpu, :opencl or :cuda)"
  end

  # :all is the engine's all_devices (-1): every usable device of the backend shares the run.
  def device!(:all), do: -1
  def device!(d) when is_integer(d) and d >= 0 and d < 0x8000_0000, do: d

  def device!(d) do
    raise ArgumentError, "device must be a non-negative integer or :all, got #{inspect(d)}"
  end

  def chunk_size!(nil), do: 0
  def chunk_size!(n) when is_integer(n) and n >= 0 and n <= @int64_max, do: n

  def chunk_size!(n) do
    raise ArgumentError,
          "chunk_size must be a non-negative integer (0: the backend's choice), got #{inspect(n)}"
  end

  def boolean!(_name, flag) when is_boolean(flag), do: flag

  def boolean!(name, flag) do
    raise ArgumentError, "#{name} must be true or false, got #{inspect(flag)}"
  end

  # GPU calls mostly wait (on the device, or on Kiln's own worker threads when the host shares
  # the work): they go to dirty IO schedulers, leaving the dirty CPU schedulers to the host backends.
  def dirty_io?(backend), do: backend in [:opencl, :cuda]

  @doc "The data as the NIF takes it, and whether the result should be a list."
  def data!(data) when is_binary(data) do
    if rem(byte_size(data), 8) != 0 do
      raise ArgumentError,
            "binary size #{byte_size(data)} bytes is not a multiple of 8 " <>
              "(expected native-endian signed 64-bit integers)"
    end

    {data, false}
  end

  def data!(data) when is_list(data), do: {data, true}
  def data!(%Range{} = range), do: {range_data!(range), true}

  def data!(data) do
    raise ArgumentError,
          "data must be a list of integers, a Range or a binary of native-endian signed 64-bit " <>
            "integers, got #{inspect(data, limit: 5, printable_limit: 40)}"
  end

  # A range crosses as {:iota, first, step, count}: the NIF fills the elements, no list is built.
  defp range_data!(%Range{first: first, step: step} = range) do
    count = Range.size(range)
    last = first + (count - 1) * step

    cond do
      count == 0 ->
        {:iota, 0, 1, 0}

      not is_int64(first) ->
        raise ArgumentError, "element at index 0 of #{inspect(range)} does not fit in int64: #{first}"

      not is_int64(last) ->
        index = Enum.find_index(range, &(not is_int64(&1)))
        value = first + index * step

        raise ArgumentError,
              "element at index #{index} of #{inspect(range)} does not fit in int64: #{value}"

      # Only a two-element range can have a step outside int64: just list it.
      not is_int64(step) ->
        Enum.to_list(range)

      true ->
        iota!(first, step, count)
    end
  end

  @doc "The NIF's form of first, first + step, ... (count elements); all must fit in int64."
  def iota!(first, step, count) do
    # Past 2^60 elements the byte count overflows size_t: say so instead of failing obscurely.
    if count > 0x1000_0000_0000_0000 do
      raise ArgumentError, "#{count} elements (#{count * 8} bytes) cannot fit in memory"
    end

    {:iota, first, step, count}
  end

  @doc "Unwraps a NIF reply, raising for {:error, {kind, message}}."
  def unwrap!({:ok, value}), do: value
  def unwrap!({:error, reason}), do: raise_error!(reason)

  def raise_error!({:bad_element, index, term, :not_integer}) do
    raise ArgumentError,
          "element at index #{index} is not an integer: #{inspect(term, limit: 5, printable_limit: 40)}"
  end

  def raise_error!({:bad_element, index, term, :out_of_range}) do
    raise ArgumentError, "element at index #{index} does not fit in int64: #{term}"
  end

  def raise_error!({kind, message})
      when kind in [:invalid_argument, :unknown_backend, :backend_unavailable] do
    raise ArgumentError, message
  end

  # A kernel that divides by zero raises what Elixir's div/rem raise.
  def raise_error!({:arithmetic, message}), do: raise(ArithmeticError, message: message)
  def raise_error!({kind, message}), do: raise(Kiln.Error, kind: kind, message: message)
end
