# Kiln.Job: an engine run in flight, started by an async function and awaited with Kiln.await/2.
defmodule Kiln.Job do
  @moduledoc """
  An engine run in flight, started by `Kiln.LogisticMap.async/4` or a kernel's `name_async`
  function (see `Kiln.Kernel`). The run goes on on Kiln's own threads while the process that
  started it keeps working; `Kiln.await/2`, `Kiln.await_many/2` or `Kiln.yield/2` collect its
  result, and `Kiln.cancel/1` stops it.

  A job belongs to the process that started it: only that process receives its result (as a
  message `{ref, reply}`, which the functions above consume; match on `job.ref` to tell it
  apart in a `receive` of your own and then pass the reply to `Kiln.Job.finish/2`). If that
  process exits, the run stops within a few milliseconds of work and frees what it held.
  """

  @enforce_keys [:ref, :owner, :finish]
  defstruct [:ref, :job, :owner, :finish]

  @type t :: %__MODULE__{ref: reference, job: reference | nil, owner: pid, finish: (term -> term)}

  @doc """
  The result of a job from the reply its message carried (`{ref, reply}` with `ref == job.ref`):
  what the synchronous call returns, or the exception it raises.
  """
  @spec finish(t, term) :: term
  def finish(%__MODULE__{finish: finish}, reply), do: finish.(reply)
end
