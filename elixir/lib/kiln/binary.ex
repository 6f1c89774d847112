# Helpers for binaries of signed 64-bit integers, the zero-copy input of Kiln, and their byte order.
defmodule Kiln.Binary do
  @moduledoc """
  Binaries of native-endian signed 64-bit integers: the form of data that crosses into the NIF
  without building or walking a list. Conversions run in the NIF, on dirty schedulers.

  ## Nx

  Kiln's binaries are exactly the bytes of an Nx tensor of type `:s64` (`{:s, 64}`): Nx keeps
  tensors row-major in the machine's native byte order, which is what `Nx.from_binary/2` reads
  and `Nx.to_binary/1` writes, and what Kiln reads and writes. A tensor crosses both ways without
  any conversion:

      tensor = Nx.iota({1_000_000}, type: :s64)
      result = tensor |> Nx.to_binary() |> Kiln.LogisticMap.run(6_700_417, 22)
      Nx.from_binary(result, :s64)
      #=> #Nx.Tensor<s64[1000000] [...]>

  (A tensor of another shape is reshaped back with `Nx.reshape/2`; of another integer type, cast
  it with `Nx.as_type(tensor, :s64)` first. `Nx.from_binary/2` refuses an empty binary.)

  ## Byte order

  The native order is the machine's (`System.endianness/0`: `:little` on x86-64 and ARM64).
  Data written elsewhere in another order (a file, a network format) would be misread silently
  if taken as native: `from_list/2` and `to_list/2` take `endianness: :native | :little | :big`
  (default `:native`) to write and read such data explicitly. Only native-endian binaries can go
  to `Kiln.LogisticMap` or `Kiln.Buffer`; convert others with `to_list/2` and `from_list/2`.

      iex> Kiln.Binary.from_list([1, -2], endianness: :big)
      <<0, 0, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 255, 255, 255, 254>>
      iex> Kiln.Binary.to_list(<<0, 0, 0, 0, 0, 0, 0, 1>>, endianness: :big)
      [1]
  """

  alias Kiln.{Args, Engine, Memory, Options}
  import Kiln.Args, only: [is_int64: 1]

  @doc """
  Packs integers, each fitting in int64: a list, a `Range` or any other `Enumerable` of them
  (a `Stream`, say). Option: `:endianness` (`:native`, the default, `:little` or `:big`).

      iex> [1, -1] |> Kiln.Binary.from_list() |> byte_size()
      16
      iex> Kiln.Binary.from_list(1..3) == Kiln.Binary.from_list([1, 2, 3])
      true
  """
  @spec from_list(Enumerable.t(), keyword) :: binary
  def from_list(data, opts \\ [])

  def from_list(data, _opts) when is_binary(data) do
    raise ArgumentError,
          "from_list expects an Enumerable of integers, got a binary (already packed): #{Args.show(data)}"
  end

  def from_list(data, opts) do
    [endianness: endianness] = Options.validate!(opts, [:endianness])
    {nif_data, _as_list, n} = Args.data_n!(data)
    # The native array the elements are decoded into, and the binary.
    Memory.check!(2 * Memory.int64_bytes(n), fn -> "a binary of #{n} elements" end)
    native = Args.unwrap!(Engine.convert(nif_data, false))
    if native_order?(endianness), do: native, else: swap(native)
  end

  @doc """
  Unpacks a binary of signed 64-bit integers into a list. Option: `:endianness` (`:native`, the
  default, `:little` or `:big`): the byte order the binary was written in.

      iex> [3, -4, 5] |> Kiln.Binary.from_list() |> Kiln.Binary.to_list()
      [3, -4, 5]
  """
  @spec to_list(binary, keyword) :: [integer]
  def to_list(binary, opts \\ [])

  def to_list(binary, opts) when is_binary(binary) do
    [endianness: endianness] = Options.validate!(opts, [:endianness])
    {data, false, n} = Args.data_n!(binary)
    Memory.check!(Memory.list_bytes(n), fn -> "a list of #{n} elements" end)

    if native_order?(endianness),
      do: Args.unwrap!(Engine.convert(data, true)),
      else: for(<<x::signed-size(64)-native <- swap(data)>>, do: x)
  end

  def to_list(other, _opts) do
    raise ArgumentError, "to_list expects a binary of signed 64-bit integers, got #{Args.show(other)}"
  end

  @doc """
  The integers `first`, `first + 1`, ..., `last` as a binary; empty when `last < first`.

      iex> Kiln.Binary.iota(1, 3) |> Kiln.Binary.to_list()
      [1, 2, 3]
  """
  @spec iota(integer, integer) :: binary
  def iota(first, last) when is_int64(first) and is_int64(last) do
    if last < first do
      <<>>
    else
      n = last - first + 1
      iota = Args.iota!(first, 1, n)
      Memory.check!(2 * Memory.int64_bytes(n), fn -> "a binary of #{n} elements" end)
      Args.unwrap!(Engine.convert(iota, false))
    end
  end

  def iota(first, last) do
    raise ArgumentError,
          "iota needs two integers that fit in int64, got #{Args.show(first)} and #{Args.show(last)}"
  end

  defp native_order?(:native), do: true
  defp native_order?(endianness), do: endianness == System.endianness()

  # Reverses the bytes of every int64: native to the other order, and back.
  defp swap(binary), do: for(<<x::size(64)-little <- binary>>, into: <<>>, do: <<x::size(64)-big>>)
end
