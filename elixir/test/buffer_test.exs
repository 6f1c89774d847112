# Resident buffers: chained runs, downloads, concurrent use of one buffer, and freeing by GC.
defmodule Kiln.BufferTest do
  # Not async: the GC test counts live buffers, which other tests would change meanwhile.
  use ExUnit.Case, async: false

  import Kiln.TestHelper
  alias Kiln.Buffer
  alias Kiln.LogisticMap

  setup do
    seed(7, 8, 9)
    :ok
  end

  for backend <- Kiln.TestHelper.backends() do
    @tag backend: backend
    @tag skip: Kiln.TestHelper.unavailable_reason(backend)
    test "#{backend}: upload, run 3 then 7 iterations equals one run of 10", %{backend: backend} do
      for _ <- 1..10 do
        data = random_int64s(:rand.uniform(3000))
        {p, mu} = {random_p(), random_mu()}
        expected = LogisticMap.run(data, p, mu, backend: :scalar, iterations: 10)

        buffer = Buffer.upload(data, backend: backend)
        assert Buffer.size(buffer) == length(data)
        assert buffer.backend == backend
        assert ^buffer = Buffer.run(buffer, p, mu, iterations: 3)
        {^buffer, stats} = Buffer.run_stats(buffer, p, mu, iterations: 7)
        assert stats.backend == backend

        assert_same(Buffer.to_list(buffer), expected, p: p, mu: mu)
        assert Buffer.download(buffer) == Kiln.Binary.from_list(expected)
      end
    end

    @tag backend: backend
    @tag skip: Kiln.TestHelper.unavailable_reason(backend)
    test "#{backend}: uploads binaries and ranges; empty buffers work", %{backend: backend} do
      binary = Kiln.Binary.iota(-1000, 1000)
      assert Buffer.upload(binary, backend: backend) |> Buffer.download() == binary
      assert Buffer.upload(-1000..1000, backend: backend) |> Buffer.to_list() == Enum.to_list(-1000..1000)
      empty = Buffer.upload([], backend: backend)
      assert Buffer.size(empty) == 0
      assert empty |> Buffer.run(61, 22) |> Buffer.to_list() == []
      assert Buffer.download(empty) == <<>>
    end
  end

  test "one buffer used by many processes at once: every run is applied exactly once" do
    data = random_int64s(50_000)
    {p, mu} = {6_700_417, -22}
    buffer = Buffer.upload(data, backend: :cpu)

    1..16
    |> Enum.map(fn _ -> Task.async(fn -> Buffer.run(buffer, p, mu, iterations: 1) end) end)
    |> Task.await_many(60_000)

    # Sixteen single steps, in whatever order, are sixteen steps.
    assert_same(
      Buffer.to_list(buffer),
      LogisticMap.run(data, p, mu, backend: :scalar, iterations: 16),
      :shared
    )
  end

  test "garbage collection frees buffers" do
    baseline = Kiln.Native.live_buffers()
    data = Kiln.Binary.iota(1, 1000)

    {while_kept, 500} =
      Task.async(fn ->
        kept = for _ <- 1..500, do: Buffer.upload(data, backend: :cpu)
        Enum.each(1..1500, fn _ -> Buffer.upload(data, backend: :cpu) end)
        :erlang.garbage_collect()
        {Kiln.Native.live_buffers(), length(kept)}
      end)
      |> Task.await()

    # The collection freed the 1500 unreferenced buffers and kept the 500 referenced ones.
    assert while_kept >= baseline + 500 and while_kept < baseline + 2000,
           "#{while_kept} live, baseline #{baseline}"

    # The task's heap, and with it the last references, died with the task.
    assert wait_for(fn -> Kiln.Native.live_buffers() <= baseline end), "#{Kiln.Native.live_buffers()} live"

    # A buffer still referenced survives a collection of its owner.
    buffer = Buffer.upload([1, 2, 3], backend: :cpu)
    :erlang.garbage_collect()
    assert Buffer.to_list(buffer) == [1, 2, 3]
  end

  test "a VM that halts while holding buffers exits cleanly" do
    ebin = Path.join(Mix.Project.app_path(), "ebin")

    script = """
    keep = for _ <- 1..50, do: Kiln.Buffer.upload(1..10_000, backend: :cpu)
    for _ <- 1..50, do: Kiln.Buffer.upload(1..10_000, backend: :cpu)
    Kiln.Buffer.run(hd(keep), 61, 22)
    IO.puts("ok \#{length(keep)}")
    System.halt(0)
    """

    {output, status} =
      System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", script], stderr_to_stdout: true)

    assert status == 0, output
    assert output =~ "ok 50"
  end

  defp wait_for(fun, tries \\ 100) do
    cond do
      fun.() ->
        true

      tries == 0 ->
        false

      true ->
        Process.sleep(10)
        :erlang.garbage_collect()
        wait_for(fun, tries - 1)
    end
  end
end
