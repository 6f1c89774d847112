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
  # What p!/1 and iterations!/1 accept, for callers that check in a guard on their fast path.
  defguard is_p(p) when is_integer(p) and p >= 1 and p <= @max_p
  defguard is_iterations(n) when is_integer(n) and n >= 0 and n <= @int64_max

  def int64_min, do: @int64_min
  def int64_max, do: @int64_max
  def max_p, do: @max_p

  def p!(p) when is_p(p), do: p

  def p!(p) do
    raise ArgumentError, "p must be an integer in 1..4294967295 (2^32 - 1), got #{show(p)}"
  end

  def mu!(mu) when is_int64(mu), do: mu

  def mu!(mu) do
    raise ArgumentError, "mu must be an integer that fits in int64, got #{show(mu)}"
  end

  def iterations!(n) when is_iterations(n), do: n

  def iterations!(n) do
    raise ArgumentError, "iterations must be a non-negative integer, got #{show(n)}"
  end

  def backend!(b) when b in @backends, do: b

  def backend!(b) do
    raise ArgumentError,
          "unknown backend #{show(b)} (expected :auto, :scalar, :cpu, :opencl or :cuda)"
  end

  # :all is the engine's all_devices (-1): every usable device of the backend shares the run.
  def device!(:all), do: -1
  def device!(d) when is_integer(d) and d >= 0 and d < 0x8000_0000, do: d

  def device!(d) do
    raise ArgumentError, "device must be a non-negative integer or :all, got #{show(d)}"
  end

  def chunk_size!(nil), do: 0
  def chunk_size!(n) when is_integer(n) and n >= 0 and n <= @int64_max, do: n

  def chunk_size!(n) do
    raise ArgumentError,
          "chunk_size must be a non-negative integer (0: the backend's choice), got #{show(n)}"
  end

  def boolean!(_name, flag) when is_boolean(flag), do: flag

  def boolean!(name, flag) do
    raise ArgumentError, "#{name} must be true or false, got #{show(flag)}"
  end

  # GPU calls mostly wait (on the device, or on Kiln's own worker threads when the host shares
  # the work): they go to dirty IO schedulers, leaving the dirty CPU schedulers to the host backends.
  def dirty_io?(backend), do: backend in [:opencl, :cuda]

  @doc "The data as the NIF takes it, and whether the result should be a list."
  def data!(data) do
    {nif_data, as_list, _n} = data_n!(data)
    {nif_data, as_list}
  end

  @doc """
  The data as the NIF takes it, whether the result should be a list, and its element count.

  Binaries cross as they are, a range as {:iota, ...}, a list with the length measured here as
  {:list, n, list} (so that the NIF walks it once instead of measuring it again); any other
  Enumerable (a Stream, a MapSet, ...) is listed first, within the memory available.
  """
  def data_n!(data) when is_binary(data) do
    if rem(byte_size(data), 8) != 0 do
      raise ArgumentError,
            "binary size #{byte_size(data)} bytes is not a multiple of 8 " <>
              "(expected native-endian signed 64-bit integers)"
    end

    {data, false, div(byte_size(data), 8)}
  end

  def data_n!(data) when is_list(data), do: counted(data, proper_length!(data, "data"))

  def data_n!(%Range{} = range) do
    case range_data!(range) do
      {:iota, _, _, count} = iota -> {iota, true, count}
      list -> counted(list, length(list))
    end
  end

  def data_n!(data) do
    if enumerable?(data) do
      list = enum_to_list!(data, "data")
      counted(list, length(list))
    else
      raise ArgumentError,
            "data must be a list of integers, a Range or a binary of native-endian signed 64-bit " <>
              "integers (or another Enumerable of integers, such as a Stream), got #{show(data)}"
    end
  end

  defp counted(list, n), do: {{:list, n, list}, true, n}

  @doc "Whether `term` is an Enumerable Kiln takes as data: not a plain map (whose elements are pairs)."
  def enumerable?(term) when is_list(term) or is_function(term, 2), do: true
  def enumerable?(%_{} = term), do: Enumerable.impl_for(term) != nil
  def enumerable?(_term), do: false

  @doc "Whether `term` is a proper list (a list ending in [])."
  def proper_list?(term) when is_list(term) do
    _ = :erlang.length(term)
    true
  catch
    :error, :badarg -> false
  end

  def proper_list?(_term), do: false

  @doc "The length of `list`, or an ArgumentError naming `name` when it is an improper list."
  def proper_length!(list, name) do
    :erlang.length(list)
  catch
    :error, :badarg ->
      raise ArgumentError, "#{name} must be a proper list of integers, got an improper list: #{show(list)}"
  end

  @doc """
  An Enumerable listed, raising ArgumentError (naming `name`) once the list would need more
  memory than is available: an endless stream ends in an error, not in the VM's abort.
  """
  def enum_to_list!(enum, name) do
    # Checked every 2^20 elements against the memory available then (a file read only once the
    # list is large, or a bound is configured: see Kiln.Memory.check!/2).
    # A stream that takes a part of another ends :halted, its elements all given.
    {_done_or_halted, {reversed, _count}} =
      Enumerable.reduce(enum, {:cont, {[], 0}}, fn x, {acc, count} ->
        count = count + 1

        if Bitwise.band(count, 0xFFFFF) == 0 do
          Kiln.Memory.check!(Kiln.Memory.list_bytes(count), fn ->
            "#{name} (an Enumerable of more than #{count} elements, listed)"
          end)
        end

        {:cont, {[x | acc], count}}
      end)

    :lists.reverse(reversed)
  end

  @doc "A range's form for the NIF: {:iota, first, step, count}, or a list; every element must fit in int64."
  def range_data!(%Range{first: first, last: last, step: step} = range)
      when is_integer(first) and is_integer(last) and is_integer(step) and step != 0 do
    count = Range.size(range)
    last = first + (count - 1) * step

    cond do
      count == 0 ->
        {:iota, 0, 1, 0}

      not is_int64(first) ->
        raise ArgumentError, "element at index 0 of #{inspect(range)} does not fit in int64: #{first}"

      not is_int64(last) ->
        # The first element past an int64 bound, found by arithmetic: the range may be huge.
        bound = if step > 0, do: @int64_max, else: @int64_min
        index = div(bound - first, step) + 1
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

  def range_data!(range) do
    raise ArgumentError,
          "data is not a valid Range (integer first, last and a non-zero step): #{show(range)}"
  end

  @doc "A term as error messages show it: short, and structs as maps (a forged struct's inspect may fail)."
  def show(term), do: inspect(term, structs: false, limit: 8, printable_limit: 40)

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

  @doc """
  Raises the exception for a NIF error. `where` names a bad element from its index in the data
  the NIF was given (a window's or a batch's index is not the caller's).
  """
  def raise_error!(reason, where \\ &"element at index #{&1}")

  def raise_error!({:bad_element, index, term, :not_integer}, where) do
    raise ArgumentError, "#{where.(index)} is not an integer: #{inspect(term, limit: 5, printable_limit: 40)}"
  end

  def raise_error!({:bad_element, index, term, :out_of_range}, where) do
    raise ArgumentError, "#{where.(index)} does not fit in int64: #{term}"
  end

  def raise_error!({kind, message}, _where)
      when kind in [:invalid_argument, :unknown_backend, :backend_unavailable] do
    raise ArgumentError, message
  end

  # A kernel that divides by zero raises what Elixir's div/rem raise.
  def raise_error!({:arithmetic, message}, _where), do: raise(ArithmeticError, message: message)
  def raise_error!({kind, message}, _where), do: raise(Kiln.Error, kind: kind, message: message)
end
