# Calls into the engine: a run replies at once or as a job on Kiln's threads; this waits, or hands out a Kiln.Job.
defmodule Kiln.Engine do
  @moduledoc false

  alias Kiln.Native

  # The NIF runs small work at once and replies; anything longer it starts as a job on one of
  # Kiln's own threads, replying {:started, ref, job}, and the job sends {ref, reply} to this
  # process when it ends. The job monitors this process: if it dies while waiting (killed, say),
  # the run stops and frees what it held.

  @doc false
  # The reply of one run, waiting for it as long as it takes.
  def call(kernel, args, nif_opts) do
    case Native.kernel_run(kernel, args, nif_opts) do
      {:started, ref, _job} -> wait(ref)
      reply -> reply
    end
  end

  @doc false
  # Native.convert's reply. With as_job, long data converts as a run's job does (the empty call's
  # path, so that it costs what a run pays around its computation), and this waits for it; else
  # on a dirty scheduler, beside no run.
  def convert(data, as_list, as_job \\ false) do
    case Native.convert(data, as_list, as_job) do
      {:started, ref, _job} -> wait(ref)
      reply -> reply
    end
  end

  # The runner holds the job's resource (and so its monitor of this process) until it replies.
  defp wait(ref) do
    receive do
      {^ref, reply} -> reply
    end
  end

  @doc false
  # Starts one run and returns a %Kiln.Job{} at once; `finish` turns the reply into the result
  # (raising as the synchronous call would), in the process that awaits it.
  def start(kernel, args, nif_opts, finish) do
    case Native.kernel_run(kernel, args, nif_opts) do
      {:started, ref, job} ->
        %Kiln.Job{ref: ref, job: job, owner: self(), finish: finish}

      reply ->
        # Small runs reply at once: the reply waits in the mailbox like a job's.
        ref = make_ref()
        send(self(), {ref, reply})
        %Kiln.Job{ref: ref, job: nil, owner: self(), finish: finish}
    end
  end

  @doc false
  def cancel_native(%Kiln.Job{job: nil}), do: :ok
  def cancel_native(%Kiln.Job{job: job}), do: Native.job_cancel(job)
end
