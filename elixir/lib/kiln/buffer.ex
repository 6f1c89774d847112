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

  Every function raises `ArgumentError` for a value that is not a buffer `upload/2` made (any
  other term, or a struct forged around a reference that is no buffer's), and for bad options,
  which are checked as in `Kiln.LogisticMap` (`config :kiln` sets the defaults of `:backend`,
  `:device` and `:iterations`; see `Kiln.Options`). `to_list/1` and `download/1` check that the
  contents fit in the memory available before fetching them. `run/4` emits the telemetry events
  of `Kiln.Telemetry`.
  """

  alias Kiln.{Args, Memory, Native, Options, Telemetry}

  @enforce_keys [:ref, :size, :backend, :device]
  defstruct [:ref, :size, :backend, :device]

  @type t :: %__MODULE__{ref: reference, size: non_neg_integer, backend: atom, device: String.t()}

  @doc """
  Copies `data` (a list of integers, a `Range`, a binary of native-endian int64 or any other
  `Enumerable` of integers) to a device.

  Options: `:backend` (default `:auto`) and `:device` (default `0`), as in `Kiln.LogisticMap`,
  except that `device: :all` raises `ArgumentError`: a buffer lives on one device.
  """
  @spec upload(Kiln.LogisticMap.data(), keyword) :: t
  def upload(data, opts \\ []) do
    opts = Options.validate!(opts, [:backend, :device])
    backend = opts[:backend]
    device = Args.device!(opts[:device])
    {nif_data, _as_list, n} = Args.data_n!(data)
    # The native staging of a list or range; a host backend's buffer is host memory too.
    Memory.check!(2 * Memory.int64_bytes(n), fn -> "a buffer of #{n} elements" end)
    nif = if Args.dirty_io?(backend), do: &Native.buffer_upload_io/3, else: &Native.buffer_upload/3

    case nif.(nif_data, backend, device) do
      {:ok, ref, size, backend, name} -> %__MODULE__{ref: ref, size: size, backend: backend, device: name}
      {:error, reason} -> Args.raise_error!(reason)
    end
  end

  @doc "Applies the map in place (option `:iterations`, default 10); returns the same buffer."
  @spec run(t, pos_integer, integer, keyword) :: t
  def run(buffer, p, mu, opts \\ []) do
    {buffer, _stats} = run_stats(buffer, p, mu, opts)
    buffer
  end

  @doc "Like `run/4`, and also returns the engine's timings (see `Kiln.LogisticMap.run_stats/4`)."
  @spec run_stats(t, pos_integer, integer, keyword) :: {t, Kiln.LogisticMap.stats()}
  def run_stats(buffer, p, mu, opts \\ []) do
    buffer = buffer!(buffer)
    opts = Options.validate!(opts, [:iterations])
    p = Args.p!(p)
    mu = Args.mu!(mu)
    iterations = opts[:iterations]
    {code, arity, outputs, locals} = Kiln.LogisticMap.Kernel.descriptor()
    kernel = {code, arity, outputs, locals, iterations}

    # The built-in map's kernel over the buffer, written into it in place.
    nif_opts = %{
      backend: buffer.backend,
      device: 0,
      chunk_size: 0,
      phase_times: false,
      host_share: false,
      as_list: false,
      into: [buffer.ref]
    }

    metadata = %{
      module: __MODULE__,
      backend: buffer.backend,
      device: buffer.device,
      n: buffer.size,
      p: p,
      mu: mu,
      options: opts
    }

    Telemetry.span(metadata, fn ->
      case native!(buffer, fn -> Kiln.Engine.call(kernel, [buffer.ref, p, mu], nif_opts) end) do
        {:ok, [_same], stats} -> {buffer, stats}
        {:error, reason} -> Args.raise_error!(reason)
      end
    end)
  end

  @doc false
  # A buffer the NIF made ({:buffer, ref, size, backend, device}: a kernel's output) as a struct.
  def __wrap__({:buffer, ref, size, backend, name}),
    do: %__MODULE__{ref: ref, size: size, backend: backend, device: name}

  @doc "The current contents, as a binary of native-endian int64."
  @spec download(t) :: binary
  def download(buffer), do: fetch(buffer!(buffer), false)

  @doc "The current contents, as a list."
  @spec to_list(t) :: [integer]
  def to_list(buffer), do: fetch(buffer!(buffer), true)

  @doc """
  The number of elements, as the struct holds it: no call crosses into the NIF, so a struct whose
  fields are well formed is taken at its word here (its reference is checked by the functions
  that use it); any other term raises `ArgumentError`.
  """
  @spec size(t) :: non_neg_integer
  def size(buffer), do: buffer!(buffer).size

  defp fetch(buffer, as_list) do
    bytes = if as_list, do: Memory.list_bytes(buffer.size), else: Memory.int64_bytes(buffer.size)
    Memory.check!(bytes, fn -> "the contents of a buffer of #{buffer.size} elements" end)
    nif = if Args.dirty_io?(buffer.backend), do: &Native.buffer_download_io/2, else: &Native.buffer_download/2
    Args.unwrap!(native!(buffer, fn -> nif.(buffer.ref, as_list) end))
  end

  # The struct's fields are checked here; whether the reference is a buffer's only the NIF can
  # tell, and it says so with a bare badarg (every other argument was checked before).
  defp buffer!(%__MODULE__{ref: ref, size: size, backend: backend, device: device} = buffer)
       when is_reference(ref) and is_integer(size) and size >= 0 and
              backend in [:scalar, :cpu, :opencl, :cuda] and is_binary(device),
       do: buffer

  defp buffer!(other), do: not_a_buffer!(other)

  defp native!(buffer, fun) do
    fun.()
  catch
    :error, :badarg -> not_a_buffer!(buffer)
  end

  defp not_a_buffer!(term) do
    raise ArgumentError, "not a buffer made by Kiln.Buffer.upload/2: #{Args.show(term)}"
  end

  defimpl Inspect do
    def inspect(buffer, _opts) do
      "#Kiln.Buffer<size: #{buffer.size}, backend: #{inspect(buffer.backend)}, device: #{inspect(buffer.device)}>"
    end
  end
end
