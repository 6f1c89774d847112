# Kiln's top-level module: the devices the engine sees and the cost of crossing into the NIF.
defmodule Kiln do
  @moduledoc """
  Elixir front end of Kiln, an engine for the exact integer logistic map
  `x <- rem(mu * x * (x + 1), p)` on scalar, multicore SIMD, OpenCL and CUDA backends.

    * `Kiln.LogisticMap` - run the map through the engine (lists, ranges or int64 binaries).
    * `Kiln.LogisticMap.Pure` - the same map in plain Elixir: the definition and the baseline.
    * `Kiln.Buffer` - data kept on a device between runs.
    * `Kiln.Cluster` - one map spread over several BEAM nodes, each with its own devices.
    * `Kiln.Binary` - build and read binaries of native-endian signed 64-bit integers (what Nx
      reads and writes for `:s64` tensors).
    * `Kiln.Options` - the options every module shares, and their defaults in `config :kiln`.
    * `Kiln.Telemetry` - the `:telemetry` events around every engine run.

  Every public function takes its data as a list, a `Range`, a binary or any other `Enumerable`
  of integers (a `Stream`), and raises `ArgumentError` naming the argument for anything it cannot
  take; a call whose result would not fit in the memory available raises before allocating it.

  Every long call runs on a dirty scheduler, so the VM stays responsive during a run.

  ## Scheduler flags

  The `:cpu` backend keeps every core busy with its own threads. A VM's normal schedulers
  busy-wait by default, spinning in `sched_yield()` when idle; against threads that never yield,
  each spin can cost a whole kernel time slice, and a ticking process was measured 70 ms late on
  2 cores. Start VMs that share their cores with Kiln with busy waiting off:

      ERL_FLAGS="+sbwt none +sbwtdcpu none +sbwtdio none" mix run ...

  (in a release, the same flags go in `vm.args`). With them, a 1 ms ticker stays within 5 ms.
  """

  alias Kiln.{Args, Native}

  @typedoc "One device of one backend, as the engine probed it."
  @type device :: %{
          backend: :scalar | :cpu | :opencl | :cuda,
          index: non_neg_integer,
          name: String.t(),
          platform: String.t(),
          compute_units: non_neg_integer,
          memory_bytes: non_neg_integer,
          gpu: boolean,
          available: boolean,
          reason: String.t() | nil
        }

  @doc """
  Every backend Kiln knows, with each of its devices.

  A backend without a usable device is listed once with `available: false` and the `reason`.
  Devices are probed once per VM; later calls are cheap.
  """
  @spec devices() :: [device]
  def devices, do: Native.devices()

  @doc """
  Crosses into the NIF and back without computing anything.

  The NIF decodes `data` (a list of integers, a binary of native-endian int64, a `Range` or any
  other `Enumerable` of integers, which give a list) into a native array and encodes it again in
  the same shape; this is the seed's `benchmarks_empty`, the cost that every
  `Kiln.LogisticMap.run/4` pays on top of the computation. Bad data raises `ArgumentError`, as
  it does for `Kiln.LogisticMap.run/4`.

      iex> Kiln.empty_call([1, -2, 3])
      [1, -2, 3]
  """
  @spec empty_call(Kiln.LogisticMap.data()) :: [integer] | binary
  def empty_call(data) do
    {nif_data, as_list, n} = Args.data_n!(data)
    Kiln.Memory.check_result!(as_list, n, fn -> "empty_call over #{n} elements" end)
    Args.unwrap!(Native.convert(nif_data, as_list))
  end
end
