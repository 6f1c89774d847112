# Bad input raises ArgumentError naming the problem; the VM never crashes.
defmodule Kiln.ErrorsTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  import Bitwise, only: [<<<: 2]
  alias Kiln.LogisticMap
  alias Kiln.LogisticMap.Pure

  defp run(data, p \\ 61, mu \\ 22, opts \\ []), do: LogisticMap.run(data, p, mu, opts)

  test "an element that is not an integer, with its index" do
    assert_raise ArgumentError, ~r/element at index 2 is not an integer: :a/, fn -> run([1, 2, :a, 4]) end
    assert_raise ArgumentError, ~r/element at index 0 is not an integer: 1.5/, fn -> run([1.5]) end
    assert_raise ArgumentError, ~r/element at index 1 is not an integer/, fn -> Kiln.empty_call([1, "2"]) end

    assert_raise ArgumentError, ~r/element at index 1 is not an integer/, fn ->
      Kiln.Binary.from_list([1, nil])
    end

    assert_raise ArgumentError, ~r/element at index 3 is not an integer/, fn ->
      Pure.run([1, 2, 3, :x], 61, 22)
    end
  end

  test "a list with its count, as Elixir hands it to the NIF: a count that does not match is an error, never a crash" do
    long = Enum.to_list(1..20_000)
    # Inline (short) and through a job (long), each as a list back and as a binary.
    for list <- [[1, 2, 3], long], as_list <- [true, false], as_job <- [false, true] do
      n = length(list)
      expected = if as_list, do: list, else: Kiln.Binary.from_list(list)
      assert Kiln.Engine.convert({:list, n, list}, as_list, as_job) == {:ok, expected}

      assert {:error, {:invalid_argument, message}} =
               Kiln.Engine.convert({:list, n + 1, list}, as_list, as_job)

      assert message =~ "is shorter"

      assert {:error, {:invalid_argument, message}} =
               Kiln.Engine.convert({:list, n - 1, list}, as_list, as_job)

      assert message =~ "is longer or improper"

      assert {:error, {:invalid_argument, message}} =
               Kiln.Engine.convert({:list, n, list ++ [1 | 2]}, as_list, as_job)

      assert message =~ "is longer or improper"

      assert {:error, {:bad_element, 1, :a, :not_integer}} =
               Kiln.Engine.convert({:list, 3, [1, :a, 3]}, as_list, as_job)
    end
  end

  test "an element outside int64, with its index" do
    for bad <- [int64_max() + 1, int64_min() - 1, 1 <<< 100] do
      assert_raise ArgumentError, ~r/element at index 1 does not fit in int64: #{bad}/, fn ->
        run([0, bad])
      end
    end

    assert_raise ArgumentError, ~r/element at index 2 .*does not fit in int64/, fn ->
      run((int64_max() - 1)..(int64_max() + 5))
    end
  end

  test "a binary whose size is not a multiple of 8" do
    for bin <- [<<1, 2, 3>>, <<0::72>>] do
      assert_raise ArgumentError, ~r/binary size #{byte_size(bin)} bytes is not a multiple of 8/, fn ->
        run(bin)
      end

      assert_raise ArgumentError, ~r/not a multiple of 8/, fn -> Kiln.empty_call(bin) end
      assert_raise ArgumentError, ~r/not a multiple of 8/, fn -> Kiln.Binary.to_list(bin) end
      assert_raise ArgumentError, ~r/not a multiple of 8/, fn -> Kiln.Buffer.upload(bin, backend: :cpu) end
      assert_raise ArgumentError, ~r/not a multiple of 8/, fn -> Pure.run(bin, 61, 22) end
    end
  end

  test "p outside 1..2^32-1, with the value" do
    for p <- [0, -1, 0x1_0000_0000, 1 <<< 70, 6.0, nil] do
      assert_raise ArgumentError, ~r/p must be an integer in 1..4294967295.*got #{inspect(p)}/, fn ->
        run([1], p)
      end
    end
  end

  test "mu outside int64, with the value" do
    assert_raise ArgumentError, ~r/mu must be an integer that fits in int64, got #{int64_max() + 1}/, fn ->
      run([1], 61, int64_max() + 1)
    end

    assert_raise ArgumentError, ~r/mu must be an integer/, fn -> run([1], 61, :big) end
  end

  test "negative iterations" do
    assert_raise ArgumentError, ~r/iterations must be a non-negative integer, got -1/, fn ->
      run([1], 61, 22, iterations: -1)
    end

    assert_raise ArgumentError, ~r/iterations must be a non-negative integer, got -3/, fn ->
      Pure.run([1], 61, 22, iterations: -3)
    end

    buffer = Kiln.Buffer.upload([1], backend: :cpu)

    assert_raise ArgumentError, ~r/iterations must be/, fn ->
      Kiln.Buffer.run(buffer, 61, 22, iterations: -1)
    end
  end

  test "an unknown backend" do
    assert_raise ArgumentError, ~r/unknown backend :tpu/, fn -> run([1], 61, 22, backend: :tpu) end
    assert_raise ArgumentError, ~r/unknown backend "cpu"/, fn -> run([1], 61, 22, backend: "cpu") end
    assert_raise ArgumentError, ~r/unknown backend :tpu/, fn -> Kiln.Buffer.upload([1], backend: :tpu) end
  end

  for backend <- Kiln.TestHelper.backends(), reason = Kiln.TestHelper.unavailable_reason(backend) do
    test "unavailable backend #{backend} says why" do
      backend = unquote(backend)
      why = Kiln.devices() |> Enum.find(&(&1.backend == backend)) |> Map.fetch!(:reason)
      error = assert_raise ArgumentError, fn -> run([1, 2], 61, 22, backend: backend) end
      assert error.message =~ "#{backend} is unavailable"
      assert String.contains?(error.message, why)
      error = assert_raise ArgumentError, fn -> Kiln.Buffer.upload([1], backend: backend) end
      assert String.contains?(error.message, why)
    end

    _ = reason
  end

  test "a device index out of range" do
    assert_raise ArgumentError, ~r/device index 7 is out of range/, fn ->
      run([1], 61, 22, backend: :cpu, device: 7)
    end

    assert_raise ArgumentError, ~r/device must be a non-negative integer or :all, got -1/, fn ->
      run([1], 61, 22, device: -1)
    end

    assert_raise ArgumentError, ~r/device must be a non-negative integer or :all, got :every/, fn ->
      run([1], 61, 22, device: :every)
    end
  end

  test "other malformed arguments" do
    assert_raise ArgumentError, ~r/data must be a list of integers, a Range or a binary/, fn ->
      run(%{a: 1})
    end

    assert_raise ArgumentError, ~r/data must be a proper list of integers/, fn -> run([1 | 2]) end

    assert_raise ArgumentError, ~r/chunk_size must be a non-negative integer/, fn ->
      run([1], 61, 22, chunk_size: -5)
    end

    assert_raise ArgumentError, ~r/unknown keys \[:iteration\]/, fn -> run([1], 61, 22, iteration: 3) end

    assert_raise ArgumentError, ~r/phase_times must be true or false, got :yes/, fn ->
      run([1], 61, 22, phase_times: :yes)
    end

    assert_raise ArgumentError, ~r/host_share must be true or false, got nil/, fn ->
      run([1], 61, 22, host_share: nil)
    end

    assert_raise ArgumentError, ~r/window must be a positive integer/, fn ->
      LogisticMap.run_windows([1], 61, 22, window: 0)
    end

    assert_raise ArgumentError, ~r/p must be/, fn -> LogisticMap.run_windows([], 0, 22) end
    assert_raise ArgumentError, ~r/iota needs two integers/, fn -> Kiln.Binary.iota(0, 1 <<< 64) end
    assert_raise ArgumentError, ~r/cannot fit in memory/, fn -> Kiln.Binary.iota(int64_min(), int64_max()) end
  end

  test "the calls that used to raise FunctionClauseError or the bare \"argument error\"" do
    assert_raise ArgumentError, ~r/options must be a keyword list, got :fast/, fn ->
      run([1], 61, 22, :fast)
    end

    assert_raise ArgumentError, ~r/options must be a keyword list/, fn ->
      LogisticMap.run_windows([1], 61, 22, %{window: 2})
    end

    assert_raise ArgumentError, ~r/to_list expects a binary/, fn -> Kiln.Binary.to_list([1, 2]) end

    assert_raise ArgumentError, ~r/from_list expects an Enumerable of integers, got a binary/, fn ->
      Kiln.Binary.from_list(<<1::64>>)
    end

    assert_raise ArgumentError, ~r/data must be a list of integers/, fn -> Kiln.Binary.from_list(:x) end

    assert_raise ArgumentError, ~r/data must be a proper list of integers/, fn ->
      Pure.run([1, 2 | 3], 61, 22)
    end

    assert_raise ArgumentError, ~r/data must be a proper list of integers/, fn ->
      LogisticMap.run_windows([1 | 2], 61, 22)
    end

    # The index in the whole input, not in the window.
    assert_raise ArgumentError, ~r/^element at index 2 does not fit in int64/, fn ->
      LogisticMap.run_windows([0, 0, 1 <<< 100], 61, 22, window: 2)
    end

    for not_a_buffer <- [:x, %Kiln.Buffer{ref: make_ref(), size: 3, backend: :cpu, device: "cpu"}, %{size: 1}] do
      for call <- [
            &Kiln.Buffer.run(&1, 61, 22),
            &Kiln.Buffer.run_stats(&1, 61, 22),
            &Kiln.Buffer.download/1,
            &Kiln.Buffer.to_list/1
          ] do
        assert_raise ArgumentError, ~r/not a buffer made by Kiln.Buffer.upload\/2/, fn ->
          call.(not_a_buffer)
        end
      end
    end

    for kernel <- [{Kiln.LogisticMap, :run}, :k, {Enum, :map, [1 | 2]}] do
      assert_raise ArgumentError, ~r/kernel/, fn -> Kiln.Cluster.map_kernel([1], kernel, nodes: [node()]) end
    end

    assert_raise ArgumentError, ~r/calc\(x, p, mu\): p must be a non-zero integer, got 0/, fn ->
      Pure.calc(1, 0, 22)
    end

    assert_raise ArgumentError, ~r/loop_calc's num must be an integer/, fn ->
      Pure.loop_calc(:ten, 1, 61, 22)
    end

    assert_raise ArgumentError, ~r/nodes must be a proper list/, fn ->
      Kiln.Cluster.run([1], 61, 22, nodes: [node() | :b])
    end

    assert_raise ArgumentError, ~r/is not a node name/, fn -> Kiln.Cluster.run([1], 61, 22, nodes: [nil]) end

    assert_raise ArgumentError, ~r/in_flight must be a positive integer of at most 1024/, fn ->
      Kiln.Cluster.run([1], 61, 22, nodes: [node()], in_flight: 1 <<< 40)
    end
  end

  test "Pure's own checks" do
    assert_raise ArgumentError, ~r/:inlined writes out exactly 10 steps, got iterations: 9/, fn ->
      Pure.run([1], 61, 22, variant: :inlined, iterations: 9)
    end

    assert_raise ArgumentError, ~r/stages must be an integer in 1..128, got 129/, fn ->
      Pure.run([1], 61, 22, stages: 129)
    end

    assert_raise ArgumentError, ~r/stages must be an integer in 1..128, got 0/, fn ->
      Pure.run([1], 61, 22, stages: 0)
    end

    assert_raise ArgumentError, ~r/variant must be :loop or :inlined/, fn ->
      Pure.run([1], 61, 22, variant: :flow)
    end

    assert_raise ArgumentError, ~r/p must be a non-zero integer/, fn -> Pure.run([1], 0, 22) end

    assert_raise ArgumentError, ~r/result at index 0 does not fit in int64/, fn ->
      Pure.run(<<1::signed-native-64>>, 1 <<< 80, 1 <<< 70, iterations: 1)
    end
  end
end
