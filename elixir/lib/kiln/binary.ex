# Helpers for binaries of native-endian signed 64-bit integers, the zero-copy input of Kiln.
defmodule Kiln.Binary do
  @moduledoc """
  Binaries of native-endian signed 64-bit integers: the form of data that crosses into the NIF
  without building or walking a list. Conversions run in the NIF, on dirty schedulers.
  """

  alias Kiln.{Args, Native}
  import Kiln.Args, only: [is_int64: 1]

  @doc """
  Packs a list of integers, each fitting in int64.

      iex> [1, -1] |> Kiln.Binary.from_list() |> byte_size()
      16
  """
  @spec from_list([integer]) :: binary
  def from_list(list) when is_list(list), do: Args.unwrap!(Native.convert(list, false))

  @doc """
  Unpacks a binary into a list of integers.

      iex> [3, -4, 5] |> Kiln.Binary.from_list() |> Kiln.Binary.to_list()
      [3, -4, 5]
  """
  @spec to_list(binary) :: [integer]
  def to_list(binary) when is_binary(binary) do
    {data, _} = Args.data!(binary)
    Args.unwrap!(Native.convert(data, true))
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
      Args.unwrap!(Native.convert(Args.iota!(first, 1, last - first + 1), false))
    end
  end

  def iota(first, last) do
    raise ArgumentError,
          "iota needs two integers that fit in int64, got #{inspect(first)} and #{inspect(last)}"
  end
end
