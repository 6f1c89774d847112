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

  A small run (well under a millisecond) runs at once in the calling process; any longer run goes
  to Kiln's own threads while the caller waits in `receive`, so no scheduler is held and a caller
  that is killed stops its run. `Kiln.LogisticMap.async/4` and kernels' `name_async` start runs
  without waiting; `await/2`, `await_many/2`, `yield/2` and `cancel/1` collect or stop them.

  ## Scheduler flags

  The `:cpu` backend keeps every core busy with its own threads. A VM's normal schedulers
  busy-wait by default, spinning in `sched_yield()` when idle; against threads that never yield,
  each spin can cost a whole kernel time slice, and a ticking process was measured 70 ms late on
  2 cores. Start VMs that share their cores with Kiln with busy waiting off:

      ERL_FLAGS="+sbwt none +sbwtdcpu none +sbwtdio none" mix run ...

  (in a release, the same flags go in `vm.args`). With them, a 1 ms ticker stays within 5 ms.
  """

  alias Kiln.{Args, Engine, Native}

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
    Args.unwrap!(Engine.convert(nif_data, as_list, true))
  end

  @doc """
  Waits for a job started by an async function (`Kiln.LogisticMap.async/4`, a kernel's
  `name_async`) and returns its result, or raises what the synchronous call would raise.

  Like `Task.await/2`: only the process that started the job may await it; if `timeout`
  milliseconds (default `5000`, or `:infinity`) pass first, the job is stopped and the caller
  exits with `{:timeout, {Kiln, :await, [job, timeout]}}`.

      iex> [1, 2] |> Kiln.LogisticMap.async(61, 22) |> Kiln.await()
      [28, 25]
  """
  @spec await(Kiln.Job.t(), timeout) :: term
  def await(job, timeout \\ 5000) do
    owner!(job, :await)
    timeout!(timeout, :await)

    case receive_reply(job, timeout) do
      {:ok, reply} ->
        Kiln.Job.finish(job, reply)

      :timeout ->
        cancel(job)
        exit({:timeout, {__MODULE__, :await, [job, timeout]}})
    end
  end

  @doc """
  Waits for every job in `jobs` (in order) and returns their results; the `timeout` covers
  them all, as in `Task.await_many/2`, and on timeout every job not yet done is stopped.
  """
  @spec await_many([Kiln.Job.t()], timeout) :: [term]
  def await_many(jobs, timeout \\ 5000) do
    unless is_list(jobs),
      do: raise(ArgumentError, "Kiln.await_many takes a list of Kiln.Job, got #{Args.show(jobs)}")

    Enum.each(jobs, &owner!(&1, :await_many))
    timeout!(timeout, :await_many)
    deadline = if timeout == :infinity, do: :infinity, else: System.monotonic_time(:millisecond) + timeout

    replies =
      Enum.map(jobs, fn job ->
        left =
          if deadline == :infinity,
            do: :infinity,
            else: max(deadline - System.monotonic_time(:millisecond), 0)

        case receive_reply(job, left) do
          {:ok, reply} ->
            {job, reply}

          :timeout ->
            Enum.each(jobs, &cancel/1)
            exit({:timeout, {__MODULE__, :await_many, [jobs, timeout]}})
        end
      end)

    Enum.map(replies, fn {job, reply} -> Kiln.Job.finish(job, reply) end)
  end

  @doc """
  Waits up to `timeout` milliseconds for a job: `{:ok, result}` if it ended (raising what the
  synchronous call would raise, if it failed), `nil` if it is still running (it goes on; call
  `yield/2` again, `await/2`, or `cancel/1`).
  """
  @spec yield(Kiln.Job.t(), timeout) :: {:ok, term} | nil
  def yield(job, timeout \\ 5000) do
    owner!(job, :yield)
    timeout!(timeout, :yield)

    case receive_reply(job, timeout) do
      {:ok, reply} -> {:ok, Kiln.Job.finish(job, reply)}
      :timeout -> nil
    end
  end

  @doc """
  Stops a job and waits until it has stopped (within a few milliseconds of work on every
  backend), discarding its result; `:ok`. A job that had already ended is only discarded.
  """
  @spec cancel(Kiln.Job.t()) :: :ok
  def cancel(job) do
    owner!(job, :cancel)
    :ok = Kiln.Engine.cancel_native(job)
    # Every job replies, stopped or not: receiving that reply leaves no stray message behind.
    {:ok, _} = receive_reply(job, :infinity)
    :ok
  end

  defp timeout!(timeout, _function) when timeout == :infinity or (is_integer(timeout) and timeout >= 0),
    do: :ok

  defp timeout!(timeout, function) do
    raise ArgumentError,
          "Kiln.#{function}: the timeout must be a non-negative integer (milliseconds) or :infinity, got #{Args.show(timeout)}"
  end

  defp receive_reply(%Kiln.Job{ref: ref}, timeout) do
    receive do
      {^ref, reply} -> {:ok, reply}
    after
      timeout -> :timeout
    end
  end

  defp owner!(%Kiln.Job{owner: owner} = job, function) do
    if owner != self() do
      raise ArgumentError,
            "Kiln.#{function} must be called by the process that started the job " <>
              "(#{inspect(owner)}), not #{inspect(self())}: #{inspect(job.ref)}"
    end
  end

  defp owner!(other, function) do
    raise ArgumentError,
          "Kiln.#{function} takes a Kiln.Job started by an async function, got #{Args.show(other)}"
  end
end
