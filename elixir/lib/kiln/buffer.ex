# Data resident on one device between runs, so that runs can be chained without copies.
defmodule Kiln.Buffer do
  @moduledoc """
  Data kept on a device between runs: upload once, run the map any number of times in place,
  download at the end.

      iex> buffer = Kiln.Buffer.upload([1, 2, 3], backend: :cpu)
      iex> buffer |> Kiln.Buffer.run(61, 22, iterations: 3) |> Kiln.Buffer.run(61, 22, iterations: 7)
      iex> Kiln.Buffer.to_list(buffer)
      [28, 25, 37]

  The struct wraps a NIF resource: the device memory is freed when the last reference is
  garbage collected. One buffer may be used from many processes at once; the calls on it are
  serialised. `run/4` mutates the buffer in place (it returns the same buffer, for pipes).
  """

  alias Kiln.{Args, Native}

  @enforce_keys [:ref, :size, :backend, :device]
  defstruct [:ref, :size, :backend, :device]

  @type t :: %__MODULE__{ref: reference, size: non_neg_integer, backend: atom, device: String.t()}

  @doc """
  Copies `data` (a list of integers, a `Range` or a binary of native-endian int64) to a device.

  Options: `:backend` (default `:auto`) and `:device` (default `0`), as in `Kiln.LogisticMap`,
  except that `device: :all` raises `ArgumentError`: a buffer lives on one device.
  """
  @spec upload([integer] | Range.t() | binary, keyword) :: t
  def upload(data, opts \\ []) do
    opts = Keyword.validate!(opts, backend: :auto, device: 0)
    backend = Args.backend!(opts[:backend])
    device = Args.device!(opts[:device])
    {nif_data, _as_list} = Args.data!(data)
    nif = if Args.dirty_io?(backend), do: &Native.buffer_upload_io/3, else: &Native.buffer_upload/3

    case nif.(nif_data, backend, device) do
      {:ok, ref, size, backend, name} -> %__MODULE__{ref: ref, size: size, backend: backend, device: name}
      {:error, reason} -> Args.raise_error!(reason)
    end
  end

  @doc "Applies the map in place (option `:iterations`, default 10); returns the same buffer."
  @spec run(t, pos_integer, integer, keyword) :: t
  def run(%__MODULE__{} = buffer, p, mu, opts \\ []) do
    {buffer, _stats} = run_stats(buffer, p, mu, opts)
    buffer
  end

  @doc "Like `run/4`, and also returns the engine's timings (see `Kiln.LogisticMap.run_stats/4`)."
  @spec run_stats(t, pos_integer, integer, keyword) :: {t, Kiln.LogisticMap.stats()}
  def run_stats(%__MODULE__{} = buffer, p, mu, opts \\ []) do
    opts = Keyword.validate!(opts, iterations: 10)
    p = Args.p!(p)
    mu = Args.mu!(mu)
    iterations = Args.iterations!(opts[:iterations])
    nif = if Args.dirty_io?(buffer.backend), do: &Native.buffer_run_io/4, else: &Native.buffer_run/4
    {buffer, Args.unwrap!(nif.(buffer.ref, p, mu, iterations))}
  end

  @doc "The current contents, as a binary of native-endian int64."
  @spec download(t) :: binary
  def download(%__MODULE__{} = buffer), do: fetch(buffer, false)

  @doc "The current contents, as a list."
  @spec to_list(t) :: [integer]
  def to_list(%__MODULE__{} = buffer), do: fetch(buffer, true)

  @doc "The number of elements."
  @spec size(t) :: non_neg_integer
  def size(%__MODULE__{size: size}), do: size

  defp fetch(buffer, as_list) do
    nif = if Args.dirty_io?(buffer.backend), do: &Native.buffer_download_io/2, else: &Native.buffer_download/2
    Args.unwrap!(nif.(buffer.ref, as_list))
  end

  defimpl Inspect do
    def inspect(buffer, _opts) do
      "#Kiln.Buffer<size: #{buffer.size}, backend: #{inspect(buffer.backend)}, device: #{inspect(buffer.device)}>"
    end
  end
end
