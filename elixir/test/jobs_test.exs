# Runs as jobs: async/await, many in flight, small calls inline, and work that stops when nobody waits for it.
defmodule Kiln.JobsTest.Kernels do
  import Kiln.Kernel

  defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)
  defkernel add(x, y), do: x + y

  # A kernel whose own loop runs k times: with a huge k it never ends on its own.
  defkernel spin(x, k), do: Enum.reduce(1..k, x, fn _, acc -> rem(acc * 3 + 1, 1_000_003) end)
end

defmodule Kiln.JobsTest do
  # Not async: stopping is measured against Kiln.Native.jobs/0, which counts every job of the VM.
  use ExUnit.Case, async: false

  alias Kiln.{LogisticMap, Native}
  alias Kiln.JobsTest.Kernels
  alias Kiln.LogisticMap.Pure

  @p 6_700_417
  @mu 22

  # How long a stopped run may take to end here: the engine looks every ~10 ms of work, and this
  # machine's two cores are shared with the test VM's other work.
  @stop_ms 250

  defp wait_until_idle(deadline_ms) do
    t0 = System.monotonic_time(:millisecond)
    wait_idle(t0 + deadline_ms, t0)
  end

  defp wait_idle(deadline, t0) do
    cond do
      Native.jobs() == 0 -> System.monotonic_time(:millisecond) - t0
      System.monotonic_time(:millisecond) > deadline -> flunk("#{Native.jobs()} job(s) still running after #{deadline - t0} ms")
      true -> Process.sleep(2) && wait_idle(deadline, t0)
    end
  end

  # Starts `fun` in a process, lets it run `ms`, kills it, and returns how long the engine took to
  # go idle afterwards.
  defp kill_after(ms, fun) do
    assert Native.jobs() == 0
    pid = spawn(fun)
    Process.sleep(ms)
    assert Process.alive?(pid), "the call ended by itself: it was meant to run until killed"
    assert Native.jobs() >= 1
    Process.exit(pid, :kill)
    wait_until_idle(@stop_ms)
  end

  describe "async/await" do
    test "gives run/4's results for lists, ranges and binaries" do
      data = Enum.to_list(1..50_000)
      bin = Kiln.Binary.from_list(data)
      jobs = [LogisticMap.async(data, @p, @mu), LogisticMap.async(1..50_000, @p, @mu), LogisticMap.async(bin, @p, @mu)]
      [a, b, c] = Kiln.await_many(jobs, 30_000)
      want = Pure.run(data, @p, @mu)
      assert a == want
      assert b == want
      assert Kiln.Binary.to_list(c) == want
    end

    test "16 jobs in flight, on several backends, each with its own result" do
      jobs =
        for i <- 1..16 do
          backend = Enum.at([:cpu, :scalar, :auto], rem(i, 3))
          {i, LogisticMap.async(Enum.to_list(i..(i + 20_000)), @p, @mu, backend: backend, iterations: rem(i, 4) + 1)}
        end

      for {{i, _}, result} <- Enum.zip(jobs, Kiln.await_many(Enum.map(jobs, &elem(&1, 1)), 60_000)) do
        assert result == Pure.run(Enum.to_list(i..(i + 20_000)), @p, @mu, iterations: rem(i, 4) + 1)
      end
    end

    test "kernels have name_async, with several arrays and outputs" do
      x = Enum.to_list(1..30_000)
      y = Enum.map(x, &(&1 * 7))
      job = Kernels.add_async(x, y)
      assert %Kiln.Job{} = job
      assert Kiln.await(job, 30_000) == Enum.zip_with(x, y, &(&1 + &2))
      assert [1, 2, 3] |> Kernels.logistic_async(61, 22, iterations: 10) |> Kiln.await() == [28, 25, 37]
    end

    test "a small call replies at once, a large one starts a job" do
      {code, arity, outputs, locals} = Kiln.LogisticMap.Kernel.descriptor()
      opts = %{backend: :cpu, device: 0, chunk_size: 0, phase_times: false, host_share: true, as_list: true}
      assert {:ok, [[28, 25, 37]], %{backend: :cpu}} = Native.kernel_run({code, arity, outputs, locals, 10}, [[1, 2, 3], 61, 22], opts)

      assert {:started, ref, _job} =
               Native.kernel_run({code, arity, outputs, locals, 10}, [Enum.to_list(1..100_000), 61, 22], opts)

      assert_receive {^ref, {:ok, [result], _}}, 30_000
      assert length(result) == 100_000
    end

    test "the run's failure is raised by await, naming the element" do
      job = LogisticMap.async([1, 2, 2 ** 70], @p, @mu)
      assert_raise ArgumentError, ~r/index 2/, fn -> Kiln.await(job) end
      job = Kernels.add_async(Enum.to_list(1..10_000) ++ [Kiln.TestHelper.int64_max()], Enum.to_list(1..10_001))
      assert_raise ArgumentError, ~r/element 10000/, fn -> Kiln.await(job, 30_000) end
    end

    test "yield gives nil while the job runs; cancel stops it and leaves no message" do
      job = LogisticMap.async([1, 2, 3], @p, @mu, iterations: 2 ** 40, backend: :cpu)
      assert Kiln.yield(job, 20) == nil
      assert :ok = Kiln.cancel(job)
      wait_until_idle(@stop_ms)
      ref = job.ref
      refute_received {^ref, _}
      assert LogisticMap.run([1, 2, 3], 61, 22) == [28, 25, 37]
    end

    test "await's timeout stops the job and exits like Task.await" do
      job = LogisticMap.async([1], @p, @mu, iterations: 2 ** 40, backend: :scalar)
      assert {:timeout, {Kiln, :await, [^job, 30]}} = catch_exit(Kiln.await(job, 30))
      wait_until_idle(@stop_ms)
    end

    test "only the owner awaits; bad arguments raise ArgumentError" do
      job = LogisticMap.async([1, 2, 3], 61, 22)
      task = Task.async(fn -> assert_raise(ArgumentError, ~r/process that started the job/, fn -> Kiln.await(job) end) end)
      Task.await(task)
      assert Kiln.await(job) == [28, 25, 37]
      assert_raise ArgumentError, ~r/Kiln.Job/, fn -> Kiln.await(:nope) end
      assert_raise ArgumentError, ~r/list of Kiln.Job/, fn -> Kiln.await_many(:nope) end
      assert_raise ArgumentError, ~r/timeout/, fn -> Kiln.yield(LogisticMap.async([1], 61, 22), -1) end
      assert_raise ArgumentError, ~r/Kiln.Job/, fn -> Kiln.cancel(make_ref()) end
    end
  end

  describe "a killed caller's work stops" do
    for backend <- [:scalar, :cpu] do
      @tag backend: backend
      test "the built-in map with 2^40 iterations on #{backend}", %{backend: backend} do
        ms = kill_after(100, fn -> LogisticMap.run([1, 2, 3], @p, @mu, iterations: 2 ** 40, backend: backend) end)
        assert ms <= @stop_ms
      end

      @tag backend: backend
      test "a kernel's own loop of 2^40 steps on #{backend}", %{backend: backend} do
        kill_after(100, fn -> Kernels.spin([1, 2, 3], 2 ** 40, backend: backend) end)
      end
    end

    test "a long list run on cpu is stopped between grains" do
      data = Enum.to_list(1..200_000)
      kill_after(100, fn -> LogisticMap.run(data, @p, @mu, iterations: 1_000_000, backend: :cpu) end)
    end

    test "killed callers never leave a backend blocked" do
      # More runaway calls than there are dirty CPU schedulers (the old way wedged them all).
      for _ <- 1..(System.schedulers_online() + 2) do
        kill_after(30, fn -> LogisticMap.run([1], @p, @mu, iterations: 2 ** 40, backend: :cpu) end)
      end

      {us, result} = :timer.tc(fn -> LogisticMap.run(Enum.to_list(1..100_000), @p, @mu, backend: :cpu) end)
      assert result == Pure.run(Enum.to_list(1..100_000), @p, @mu)
      assert us < 5_000_000
    end

    @tag skip: Kiln.TestHelper.unavailable_reason(:opencl)
    test "a runaway OpenCL call stops, and the next OpenCL call runs" do
      kill_after(300, fn -> LogisticMap.run([1, 2, 3], @p, @mu, iterations: 2 ** 40, backend: :opencl) end)
      assert LogisticMap.run([1, 2, 3], 61, 22, backend: :opencl) == [28, 25, 37]
    end

    @tag skip: Kiln.TestHelper.unavailable_reason(:cuda)
    test "a runaway CUDA call stops, and the next CUDA call runs" do
      kill_after(300, fn -> LogisticMap.run([1, 2, 3], @p, @mu, iterations: 2 ** 40, backend: :cuda) end)
      assert LogisticMap.run([1, 2, 3], 61, 22, backend: :cuda) == [28, 25, 37]
    end

    test "an abandoned async job stops when its owner dies" do
      parent = self()

      owner =
        spawn(fn ->
          _job = LogisticMap.async([1, 2, 3], @p, @mu, iterations: 2 ** 40, backend: :cpu)
          send(parent, :started)
          Process.sleep(:infinity)
        end)

      assert_receive :started, 5_000
      Process.sleep(50)
      assert Native.jobs() == 1
      Process.exit(owner, :kill)
      wait_until_idle(@stop_ms)
    end
  end
end
