# Many processes calling the NIF at once, on a mix of backends, all get exact results.
defmodule Kiln.ConcurrencyTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  alias Kiln.LogisticMap

  test "32 processes at once on a mix of backends" do
    seed(10, 11, 12)
    backends = Enum.filter([:scalar, :cpu, :opencl, :cuda], &available?/1)

    jobs =
      for i <- 1..32 do
        data = random_int64s(:rand.uniform(40_000))
        # Half the callers pass binaries, half lists: both decoders run concurrently.
        data = if rem(i, 2) == 0, do: Kiln.Binary.from_list(data), else: data
        {p, mu, n} = {random_p(), random_mu(), random_iterations()}
        backend = Enum.at(backends, rem(i, length(backends)))
        expected = LogisticMap.run(data, p, mu, backend: :scalar, iterations: n)
        {i, backend, data, p, mu, n, expected}
      end

    # Pure agrees with :scalar (the reference above) on a sample, so the comparison below is exact.
    {_, _, sample, p, mu, n, expected} = Enum.at(jobs, 0)

    assert_same(
      Enum.take(LogisticMap.Pure.run(sample, p, mu, iterations: n), 2000),
      Enum.take(expected, 2000),
      :sample
    )

    parent = self()

    jobs
    |> Enum.map(fn {i, backend, data, p, mu, n, _} ->
      Task.async(fn ->
        # Start together, so the calls overlap.
        send(parent, {:ready, i})
        receive do: (:go -> :ok)
        {i, LogisticMap.run(data, p, mu, backend: backend, iterations: n)}
      end)
    end)
    |> tap(fn tasks ->
      for _ <- tasks, do: assert_receive({:ready, _}, 10_000)
      Enum.each(tasks, &send(&1.pid, :go))
    end)
    |> Task.await_many(120_000)
    |> Enum.each(fn {i, result} ->
      {^i, backend, _, p, mu, n, expected} = Enum.at(jobs, i - 1)
      assert_same(result, expected, job: i, backend: backend, p: p, mu: mu, iterations: n)
    end)
  end
end
