# Every available backend against the pure Elixir definition, over the whole int64 domain and every data shape.
defmodule Kiln.LogisticMapTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  alias Kiln.LogisticMap
  alias Kiln.LogisticMap.Pure

  setup do
    seed()
    :ok
  end

  for backend <- Kiln.TestHelper.backends() do
    describe "#{backend} backend" do
      @describetag backend: backend
      @describetag skip: Kiln.TestHelper.unavailable_reason(backend)

      test "equals Pure on lists over the whole int64 range", %{backend: backend} do
        for round <- 1..60 do
          {p, mu, n} = {random_p(), random_mu(), random_iterations()}
          data = random_int64s(:rand.uniform(80))
          expected = Pure.run(data, p, mu, iterations: n)
          context = [round: round, p: p, mu: mu, iterations: n]
          assert_same(LogisticMap.run(data, p, mu, backend: backend, iterations: n), expected, context)
        end
      end

      test "equals Pure on binaries, and answers with a binary", %{backend: backend} do
        for round <- 1..60 do
          {p, mu, n} = {random_p(), random_mu(), random_iterations()}
          binary = Kiln.Binary.from_list(random_int64s(:rand.uniform(80)))
          expected = Pure.run(binary, p, mu, iterations: n)
          result = LogisticMap.run(binary, p, mu, backend: backend, iterations: n)
          assert is_binary(result)
          assert_same(result, expected, round: round, p: p, mu: mu, iterations: n)
        end
      end

      test "equals Pure on ranges, and answers with a list", %{backend: backend} do
        for round <- 1..40 do
          {p, mu, n} = {random_p(), random_mu(), random_iterations()}
          range = random_range()
          expected = Pure.run(range, p, mu, iterations: n)

          assert_same(LogisticMap.run(range, p, mu, backend: backend, iterations: n), expected,
            round: round,
            range: range,
            p: p,
            mu: mu,
            iterations: n
          )
        end
      end

      test "edge parameters: p = 1 and 2^32 - 1, mu at the int64 extremes", %{backend: backend} do
        data = random_int64s(64)

        for p <- [1, 2, 0xFFFF_FFFF], mu <- [int64_min(), int64_max(), 0, -1], n <- [0, 1, 12] do
          expected = Pure.run(data, p, mu, iterations: n)

          assert_same(LogisticMap.run(data, p, mu, backend: backend, iterations: n), expected,
            p: p,
            mu: mu,
            n: n
          )
        end
      end

      test "large inputs across chunks equal the scalar backend", %{backend: backend} do
        binary = Kiln.Binary.from_list(random_int64s(200_003))

        for chunk <- [0, 1000, 65_536] do
          {p, mu} = {random_p(), random_mu()}
          expected = LogisticMap.run(binary, p, mu, backend: :scalar)
          result = LogisticMap.run(binary, p, mu, backend: backend, chunk_size: chunk)
          assert_same(result, expected, p: p, mu: mu, chunk_size: chunk)
        end
      end

      test "device: :all spreads a run over every usable device, or refuses with a reason",
           %{backend: backend} do
        binary = Kiln.Binary.from_list(random_int64s(300_007))
        {p, mu} = {random_p(), random_mu()}
        expected = LogisticMap.run(binary, p, mu, backend: :scalar)

        usable =
          Kiln.devices() |> Enum.filter(&(&1.backend == backend and &1.available)) |> Enum.map(& &1.name)

        if backend == :opencl and length(usable) > 1 do
          assert_raise ArgumentError, ~r/only the cuda backend spreads one run over several/, fn ->
            LogisticMap.run(binary, p, mu, backend: backend, device: :all)
          end
        else
          for chunk <- [0, 4096], host_share <- [true, false] do
            {result, stats} =
              LogisticMap.run_stats(binary, p, mu,
                backend: backend,
                device: :all,
                chunk_size: chunk,
                host_share: host_share
              )

            assert_same(result, expected, p: p, mu: mu, chunk_size: chunk, host_share: host_share)
            # Several devices are named together, in index order.
            assert stats.device == Enum.join(usable, " + ")
          end
        end

        assert_raise ArgumentError, ~r/a device buffer lives on one device/, fn ->
          Kiln.Buffer.upload(binary, backend: backend, device: :all)
        end
      end

      test "run_stats reports the backend that ran", %{backend: backend} do
        {result, stats} = LogisticMap.run_stats(1..3, 61, 22, backend: backend)
        assert result == [28, 25, 37]
        assert stats.backend == backend
        assert is_binary(stats.device)

        for key <- [:host_to_device_s, :kernel_s, :device_to_host_s, :total_s] do
          assert is_float(stats[key]) and stats[key] >= 0.0
        end
      end

      test "phase_times: GPU phases are timed only when asked", %{backend: backend} do
        binary = Kiln.Binary.from_list(random_int64s(100_000))
        expected = LogisticMap.run(binary, 6_700_417, 22, backend: :scalar)
        # The device computes everything (host_share: false): with the host sharing a small
        # input, its cores may take all of it, and then the device has no phases to time.
        opts = [backend: backend, host_share: false]
        {r1, plain} = LogisticMap.run_stats(binary, 6_700_417, 22, opts)
        {r2, timed} = LogisticMap.run_stats(binary, 6_700_417, 22, [phase_times: true] ++ opts)
        assert r1 == expected and r2 == expected

        cond do
          backend == :opencl ->
            assert {plain.host_to_device_s, plain.kernel_s, plain.device_to_host_s} == {0.0, 0.0, 0.0}
            assert timed.host_to_device_s > 0.0 and timed.kernel_s > 0.0 and timed.device_to_host_s > 0.0

          # CUDA's kernel reads and writes a binary's pinned staging itself: no copies to time.
          backend == :cuda ->
            assert {plain.host_to_device_s, plain.kernel_s, plain.device_to_host_s} == {0.0, 0.0, 0.0}
            assert timed.kernel_s > 0.0
            assert {timed.host_to_device_s, timed.device_to_host_s} == {0.0, 0.0}

          true ->
            assert plain.kernel_s > 0.0 and timed.kernel_s > 0.0
        end
      end

      test "host_share: the host's chunks give the same results; off, the device computes all",
           %{backend: backend} do
        binary = Kiln.Binary.from_list(random_int64s(200_003))
        expected = LogisticMap.run(binary, 6_700_417, -22, backend: :scalar)
        opts = [backend: backend, chunk_size: 1024]

        {off, off_stats} = LogisticMap.run_stats(binary, 6_700_417, -22, [host_share: false] ++ opts)
        assert off == expected
        assert off_stats.host_elements == 0

        # How much the host takes is timing driven (the C++ suite checks the mechanism with a
        # scripted device): every result is checked, and host backends share nothing.
        for _ <- 1..3 do
          {result, stats} = LogisticMap.run_stats(binary, 6_700_417, -22, opts)
          assert result == expected
          assert stats.host_elements <= 200_003
          if backend not in [:opencl, :cuda], do: assert(stats.host_elements == 0)
        end
      end

      test "empty inputs and iterations: 0", %{backend: backend} do
        assert LogisticMap.run([], 61, 22, backend: backend) == []
        assert LogisticMap.run(<<>>, 61, 22, backend: backend) == <<>>
        assert LogisticMap.run(1..0//1, 61, 22, backend: backend) == []
        data = random_int64s(20)
        assert LogisticMap.run(data, 61, 22, backend: backend, iterations: 0) == data
      end
    end
  end

  test ":auto picks an available backend" do
    data = Enum.to_list(1..1000)
    {result, stats} = LogisticMap.run_stats(data, 61, 22)
    assert result == Pure.run(data, 61, 22)
    assert available?(stats.backend)
  end

  describe "tiny inputs with :auto" do
    @int64_min -0x8000_0000_0000_0000
    @int64_max 0x7FFF_FFFF_FFFF_FFFF

    test "run in the calling process, exactly as Pure, on lists and binaries" do
      for round <- 1..300 do
        {p, mu} = {random_p(), random_mu()}
        k = Enum.random([0, 1, 2, 10, 25])
        edges = [0, 1, -1, @int64_min, @int64_max, p, -p, p - 1]
        data = Enum.take_random(edges ++ random_int64s(8), :rand.uniform(div(256, max(k, 1))))
        {result, stats} = LogisticMap.run_stats(data, p, mu, iterations: k)
        assert stats.backend == :pure, "round #{round}: #{length(data)} elements, #{k} iterations"
        assert_same(result, Pure.run(data, p, mu, iterations: k), round: round, p: p, mu: mu, iterations: k)
        binary = Kiln.Binary.from_list(data)

        assert_same(LogisticMap.run(binary, p, mu, iterations: k), Pure.run(binary, p, mu, iterations: k),
          round: round
        )
      end
    end

    test "beyond 256 element-iterations, or with another backend or device, go to the engine" do
      assert {_, %{backend: :pure}} = LogisticMap.run_stats(Enum.to_list(1..25), 61, 22)
      assert {_, %{backend: b}} = LogisticMap.run_stats(Enum.to_list(1..26), 61, 22)
      assert b != :pure
      assert {_, %{backend: :pure}} = LogisticMap.run_stats([7], 61, 22, iterations: 256)
      assert {_, %{backend: b}} = LogisticMap.run_stats([7], 61, 22, iterations: 257)
      assert b != :pure
      assert {_, %{backend: :scalar}} = LogisticMap.run_stats([1, 2, 3], 61, 22, backend: :scalar)
      assert_raise ArgumentError, ~r/device/, fn -> LogisticMap.run([1, 2, 3], 61, 22, device: 9) end
    end

    test "name a bad element as the engine does" do
      assert_raise ArgumentError, ~r/element at index 2 does not fit in int64/, fn ->
        LogisticMap.run([1, 2, @int64_max + 1], 61, 22)
      end

      assert_raise ArgumentError, ~r/element at index 1/, fn -> LogisticMap.run([1, 2.0], 61, 22) end
      assert_raise ArgumentError, ~r/improper list/, fn -> LogisticMap.run([1 | 2], 61, 22) end
      assert_raise ArgumentError, ~r/multiple of 8/, fn -> LogisticMap.run(<<1, 2, 3>>, 61, 22) end
    end
  end

  test "run_windows equals run on lists, ranges and binaries" do
    data = random_int64s(10_007)
    binary = Kiln.Binary.from_list(data)

    for window <- [1, 7, 4096, 65_536], {p, mu} = {random_p(), random_mu()} do
      expected = LogisticMap.run(data, p, mu)
      assert_same(LogisticMap.run_windows(data, p, mu, window: window), expected, window: window)

      assert_same(
        LogisticMap.run_windows(binary, p, mu, window: window, backend: :cpu),
        Kiln.Binary.from_list(expected),
        window: window
      )
    end

    assert LogisticMap.run_windows(1..100_000, 6_700_417, 22) == LogisticMap.run(1..100_000, 6_700_417, 22)
    assert LogisticMap.run_windows([], 61, 22) == []
    assert LogisticMap.run_windows(<<>>, 61, 22) == <<>>
  end

  test "empty_call returns its argument, list and binary" do
    data = random_int64s(1000)
    assert Kiln.empty_call(data) == data
    binary = Kiln.Binary.from_list(data)
    assert Kiln.empty_call(binary) == binary
    assert Kiln.empty_call([]) == []
    assert Kiln.empty_call(<<>>) == <<>>
  end

  test "unaligned binaries (sub-binaries) are read correctly and never written" do
    data = random_int64s(100)

    <<_::binary-size(3), unaligned::binary-size(800), _::binary>> =
      <<0, 0, 0>> <> Kiln.Binary.from_list(data) <> <<9>>

    copy = :binary.copy(unaligned)
    assert Kiln.Binary.to_list(unaligned) == data
    assert Kiln.empty_call(unaligned) == copy

    assert_same(
      LogisticMap.run(unaligned, 61, -22, backend: :cpu),
      Pure.run(data, 61, -22) |> Kiln.Binary.from_list(),
      :unaligned
    )

    assert unaligned == copy
  end

  test "the input binary is left unchanged" do
    binary = Kiln.Binary.from_list(random_int64s(5000))
    copy = :binary.copy(binary)

    for backend <- available_backends() do
      LogisticMap.run(binary, 6_700_417, 22, backend: backend)
      assert binary == copy
    end
  end

  test "Kiln.Binary helpers" do
    data = random_int64s(1000)
    assert data |> Kiln.Binary.from_list() |> Kiln.Binary.to_list() == data
    assert Kiln.Binary.from_list([1, -1]) == <<1::signed-native-64, -1::signed-native-64>>
    assert Kiln.Binary.iota(5, 4) == <<>>
    assert Kiln.Binary.iota(-2, 2) |> Kiln.Binary.to_list() == [-2, -1, 0, 1, 2]

    assert Kiln.Binary.iota(int64_max() - 1, int64_max()) |> Kiln.Binary.to_list() == [
             int64_max() - 1,
             int64_max()
           ]

    assert byte_size(Kiln.Binary.iota(1, 1_048_576)) == 8_388_608
  end

  test "devices lists every backend with the documented keys" do
    devices = Kiln.devices()
    assert Enum.map(devices, & &1.backend) |> Enum.uniq() |> Enum.sort() == Enum.sort(backends())

    for d <- devices do
      assert %{
               backend: _,
               index: i,
               name: name,
               platform: platform,
               compute_units: cu,
               memory_bytes: mem,
               gpu: gpu,
               available: available,
               reason: reason
             } = d

      assert is_integer(i) and is_binary(name) and is_binary(platform) and is_integer(cu) and is_integer(mem)
      assert is_boolean(gpu) and is_boolean(available)
      assert if(available, do: reason == nil, else: is_binary(reason))
    end
  end
end
