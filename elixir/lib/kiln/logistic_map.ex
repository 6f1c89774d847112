# The logistic map through the native engine: whole inputs, windows, and per-phase timings.
defmodule Kiln.LogisticMap do
  @moduledoc """
  The exact integer logistic map `x <- rem(mu * x * (x + 1), p)`, applied `iterations` times to
  every element, computed by the native engine.

  Results are exactly those of `Kiln.LogisticMap.Pure` (Elixir's unbounded integers and `rem/2`,
  whose result takes the sign of the dividend) on every backend. Domain: elements and `mu` fit in
  int64, `p` is in `1..2^32-1`, `iterations >= 0`.

      iex> 1..3 |> Kiln.LogisticMap.run(61, 22)
      [28, 25, 37]

  Data can be a list of integers, a `Range`, or a binary of native-endian signed 64-bit integers
  (see `Kiln.Binary`); the result has the input's shape (a range gives a list). Binaries cross
  into the NIF without conversion, so they are the fast path for large inputs.

  ## Options

    * `:backend` - `:auto` (default: a GPU if there is one, else `:cpu`), `:cpu` (all cores,
      SIMD), `:scalar` (one core, the reference loop), `:opencl` or `:cuda`.
    * `:device` - the index among the backend's devices (default `0`), see `Kiln.devices/0`;
      or `:all`: every usable device of the backend shares the run (`:cuda` feeds all its GPUs
      from one queue of chunks; a backend with one usable device runs on it; `:opencl` with
      several raises `ArgumentError`).
    * `:iterations` - how many times the map is applied (default `10`).
    * `:chunk_size` - at most this many elements per device chunk (default `0`: the
      backend's choice).
    * `:phase_times` - GPU backends: time each chunk's host-to-device copy, kernel and
      device-to-host copy with device events, for `run_stats/4` (default `false`: the events
      cost about 15% of an end-to-end run, so without this option those stats are `0.0`).
    * `:host_share` - GPU backends, inputs that are not already in page-locked memory: a
      staging thread whose device slots are all busy computes the next chunk itself with the
      `:cpu` backend's kernel instead of waiting, so the host's cores and the GPU share the work
      (default `true`; `:host_elements` in `run_stats/4` counts the host's elements; a small
      input may be computed wholly on the host). Results are the same either way; `false` makes
      the device compute every element.

  Bad arguments, unknown backends and unavailable backends (with the engine's reason) raise
  `ArgumentError`; device failures raise `Kiln.Error`.
  """

  alias Kiln.{Args, Native}

  @type data :: [integer] | Range.t() | binary
  @type stats :: %{
          backend: atom,
          device: String.t(),
          host_to_device_s: float,
          kernel_s: float,
          device_to_host_s: float,
          total_s: float,
          chunks: non_neg_integer,
          host_elements: non_neg_integer,
          decode_s: float,
          encode_s: float
        }

  @run_defaults [
    backend: :auto,
    device: 0,
    iterations: 10,
    chunk_size: 0,
    phase_times: false,
    host_share: true
  ]

  @doc """
  Applies the map to every element of `data`; see the module doc for the options.

      iex> Kiln.LogisticMap.run([1, 2, 3], 61, 22, backend: :scalar, iterations: 1)
      [44, 10, 20]
  """
  @spec run(data, pos_integer, integer, keyword) :: [integer] | binary
  def run(data, p, mu, opts \\ []) do
    {result, _stats} = run_stats(data, p, mu, opts)
    result
  end

  @doc """
  Like `run/4`, and also returns where the time went, as the engine measured it (seconds).

  The stats hold `:backend` (the one that ran, `:auto` resolved), `:device` (its name),
  `:host_to_device_s`, `:kernel_s`, `:device_to_host_s` (on GPU backends only with
  `phase_times: true`; host backends report their whole run as `:kernel_s`, and so does CUDA
  for data outside page-locked memory, whose kernel reads and writes the pinned staging itself
  instead of copying it), `:total_s` (the
  engine's whole call), `:chunks` (device chunks and host pieces), `:host_elements` (how many
  elements the host computed, see `:host_share`), and the NIF's own `:decode_s` / `:encode_s` (terms to native
  arrays and back).
  """
  @spec run_stats(data, pos_integer, integer, keyword) :: {[integer] | binary, stats}
  def run_stats(data, p, mu, opts \\ []) do
    {p, mu, opts} = validate!(p, mu, opts)
    {nif_data, as_list} = Args.data!(data)
    nif = if Args.dirty_io?(opts[:backend]), do: &Native.run_io/10, else: &Native.run/10

    case nif.(
           nif_data,
           as_list,
           p,
           mu,
           opts[:iterations],
           opts[:backend],
           opts[:device],
           opts[:chunk_size],
           opts[:phase_times],
           opts[:host_share]
         ) do
      {:ok, result, stats} -> {result, stats}
      {:error, reason} -> Args.raise_error!(reason)
    end
  end

  @doc """
  Streams `data` through the NIF in windows of `:window` elements (default `65_536`) and
  concatenates the results: the seed's `benchmarks8`. Takes the options of `run/4` too.

  Lists and ranges give a list, binaries a binary; the result equals `run/4`'s.

      iex> Kiln.LogisticMap.run_windows(1..5, 61, 22, window: 2)
      [28, 25, 37, 50, 25]
  """
  @spec run_windows(data, pos_integer, integer, keyword) :: [integer] | binary
  def run_windows(data, p, mu, opts \\ []) do
    {window, opts} = Keyword.pop(opts, :window, 65_536)

    unless is_integer(window) and window > 0 do
      raise ArgumentError, "window must be a positive integer, got #{inspect(window)}"
    end

    # Validate once up front, so that bad arguments raise even when there is no window to run.
    validate!(p, mu, opts)
    Args.data!(data)

    if is_binary(data) do
      bytes = window * 8

      for offset <- 0..(byte_size(data) - 1)//bytes do
        run(binary_part(data, offset, min(bytes, byte_size(data) - offset)), p, mu, opts)
      end
      |> IO.iodata_to_binary()
    else
      # Enum.split walks each window once; Stream.chunk_every cost several times the NIF calls.
      data |> Enum.to_list() |> list_windows(p, mu, window, opts, []) |> :lists.append()
    end
  end

  defp list_windows([], _p, _mu, _window, _opts, acc), do: Enum.reverse(acc)

  defp list_windows(list, p, mu, window, opts, acc) do
    {head, rest} = Enum.split(list, window)
    list_windows(rest, p, mu, window, opts, [run(head, p, mu, opts) | acc])
  end

  defp validate!(p, mu, opts) do
    opts = Keyword.validate!(opts, @run_defaults)
    Args.backend!(opts[:backend])
    opts = Keyword.put(opts, :device, Args.device!(opts[:device]))
    Args.iterations!(opts[:iterations])
    Args.boolean!(:phase_times, opts[:phase_times])
    Args.boolean!(:host_share, opts[:host_share])
    opts = Keyword.put(opts, :chunk_size, Args.chunk_size!(opts[:chunk_size]))
    {Args.p!(p), Args.mu!(mu), opts}
  end
end
