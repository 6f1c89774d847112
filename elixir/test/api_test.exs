# Data as Elixir programs hold it (any Enumerable), LogisticMap.stream/4, size checks before allocating, byte order.
defmodule Kiln.ApiTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  import Bitwise, only: [<<<: 2]
  alias Kiln.{Binary, Buffer, Cluster, LogisticMap}
  alias Kiln.LogisticMap.Pure

  setup do
    seed(31, 41, 59)
    :ok
  end

  test "lists come back exact from every encoder, spent in place or from a copy that leaves a binary as it was" do
    # Past the inline limit (jobs) and below it; bignums (beyond 2^59) among the values.
    for l <- [random_int64s(100_003), random_int64s(1000)] do
      bin = Binary.from_list(l)
      copy = :binary.copy(bin)
      assert Kiln.empty_call(l) == l
      assert Binary.to_list(bin) == l
      assert Kiln.empty_call(bin) == bin
      # A binary's list as a job (the engine's conversion of a long binary, from a copy).
      assert Kiln.Engine.convert(bin, true, true) == {:ok, l}
      assert bin == copy
      assert l |> Buffer.upload(backend: :cpu) |> Buffer.to_list() == l
      assert LogisticMap.run(l, 61, 22, backend: :cpu) == Pure.run(l, 61, 22)
    end
  end

  describe "any Enumerable of integers is data" do
    test "streams, MapSets and functions, everywhere data is taken" do
      for _ <- 1..10 do
        list = random_int64s(:rand.uniform(300))
        {p, mu} = {random_p(), random_mu()}
        expected = Pure.run(list, p, mu)

        for data <- [Stream.map(list, & &1), Stream.concat([list]), Stream.take(list, length(list))] do
          assert LogisticMap.run(data, p, mu, backend: :cpu) == expected
          assert LogisticMap.run_windows(data, p, mu, window: 7) == expected
          assert Cluster.run(data, p, mu, nodes: [node()], parts: 2) == expected
          assert Pure.run(data, p, mu) == expected
          assert Binary.from_list(data) == Binary.from_list(list)
          assert data |> Buffer.upload(backend: :cpu) |> Buffer.to_list() == list
          assert Kiln.empty_call(data) == list
        end
      end

      assert Binary.from_list(1..3) == Binary.from_list([1, 2, 3])
      assert Binary.from_list(Stream.map(1..3, &(&1 * 2))) == Binary.from_list([2, 4, 6])
      assert LogisticMap.run(MapSet.new([3, 1, 2]), 61, 22) == [28, 25, 37]

      assert LogisticMap.run(Stream.unfold(1, &if(&1 > 3, do: nil, else: {&1, &1 + 1})), 61, 22) == [
               28,
               25,
               37
             ]
    end

    test "run_windows walks a Range or a Stream window by window, naming bad elements by their index in the whole input" do
      assert LogisticMap.run_windows(1..100_000, 6_700_417, 22, window: 4096) ==
               LogisticMap.run(1..100_000, 6_700_417, 22)

      assert LogisticMap.run_windows(10..-10//-3, 61, 22, window: 2) == Pure.run(10..-10//-3, 61, 22)

      assert_raise ArgumentError, ~r/^element at index 2 does not fit in int64/, fn ->
        LogisticMap.run_windows([0, 0, 1 <<< 100], 61, 22, window: 2)
      end

      assert_raise ArgumentError, ~r/^element at index 5 is not an integer: :x/, fn ->
        LogisticMap.run_windows(Stream.map([1, 2, 3, 4, 5, :x, 7], & &1), 61, 22, window: 2)
      end

      assert_raise ArgumentError, ~r/^element at index 3 is not an integer/, fn ->
        LogisticMap.run_windows([1, 2, 3, :y], 61, 22, window: 3)
      end

      assert_raise ArgumentError, ~r/data must be a proper list of integers/, fn ->
        LogisticMap.run_windows([1, 2, 3 | 4], 61, 22, window: 2)
      end
    end
  end

  describe "LogisticMap.stream/4" do
    test "maps chunks of every shape to their results, in order, for any batch size" do
      for batch <- [1, 3, 64, 65_536] do
        chunks =
          for _ <- 1..40 do
            list = random_int64s(:rand.uniform(20) - 1)

            case :rand.uniform(4) do
              1 -> list
              2 -> Binary.from_list(list)
              3 -> Stream.map(list, & &1)
              4 -> random_range()
            end
          end

        {p, mu, n} = {random_p(), random_mu(), random_iterations()}

        results =
          chunks |> LogisticMap.stream(p, mu, iterations: n, batch: batch, backend: :cpu) |> Enum.to_list()

        assert length(results) == length(chunks)

        for {chunk, result} <- Enum.zip(chunks, results) do
          assert_same(result, LogisticMap.run(chunk, p, mu, iterations: n, backend: :scalar), batch: batch)
        end
      end
    end

    test "a million small chunks, in bounded memory" do
      # Expected results by element value: the map of 0..999 once.
      table = 0..999 |> Pure.run(6_700_417, 22) |> List.to_tuple()
      chunks = Stream.map(0..999_999, &[rem(&1, 1000)])

      {count, heaps} =
        chunks
        |> LogisticMap.stream(6_700_417, 22, backend: :cpu)
        |> Stream.with_index()
        |> Enum.reduce({0, []}, fn {[result], i}, {count, heaps} ->
          assert result == elem(table, rem(i, 1000))

          # The consumer's heap, collected, every 50,000 chunks: it must not grow with the chunks.
          heaps =
            if rem(i, 50_000) == 25_000 do
              :erlang.garbage_collect()
              {:total_heap_size, words} = Process.info(self(), :total_heap_size)
              [words | heaps]
            else
              heaps
            end

          {count + 1, heaps}
        end)

      assert count == 1_000_000
      # The stream holds a few batches of 65,536 one-element chunks: the one being gathered, the
      # results being emitted, and at times the next batch's results waiting in the mailbox (so a
      # sample varies, up to about a million words, with where in a batch and when it is taken).
      # Holding on to one result a chunk would add 4 words a chunk: past 1.5 million words by the
      # 8th of the 20 samples, 4 million by the last.
      assert Enum.max(heaps) < 1_500_000, "heap samples #{inspect(Enum.reverse(heaps))}"
    end

    test "is lazy: chunks are taken as results are consumed, at most two calls ahead" do
      test = self()

      chunks =
        Stream.map(0..199, fn i ->
          send(test, {:taken, i})
          [i]
        end)

      taken_before =
        chunks
        |> LogisticMap.stream(61, 22, batch: 1, backend: :scalar)
        |> Stream.with_index()
        |> Enum.map(fn {_result, i} -> max_taken(i) - i end)

      # Each result is consumed when exactly one chunk beyond it was taken (batch: 1): the next
      # call was under way before the result came, and no more than it.
      assert Enum.drop(taken_before, -1) |> Enum.uniq() == [1], inspect(taken_before, limit: :infinity)
      assert List.last(taken_before) == 0

      assert Stream.repeatedly(fn -> [1, 2] end) |> LogisticMap.stream(61, 22) |> Enum.take(3) ==
               [[28, 25], [28, 25], [28, 25]]
    end

    test "bad chunks raise ArgumentError in the consumer, naming the chunk" do
      assert_raise ArgumentError, ~r/^chunk 2, element at index 1 is not an integer: :a/, fn ->
        [[1], [2], [3, :a]] |> LogisticMap.stream(61, 22) |> Enum.to_list()
      end

      assert_raise ArgumentError, ~r/^chunk 1, element at index 0 does not fit in int64/, fn ->
        [[1], [1 <<< 64], [2]] |> LogisticMap.stream(61, 22, batch: 1) |> Enum.to_list()
      end

      assert_raise ArgumentError, ~r/^chunk 1 must be a proper list/, fn ->
        [[1], [1 | 2]] |> LogisticMap.stream(61, 22) |> Enum.to_list()
      end

      assert_raise ArgumentError, ~r/^chunk 0: binary size 3 bytes/, fn ->
        [<<1, 2, 3>>] |> LogisticMap.stream(61, 22) |> Enum.to_list()
      end

      # Arguments are checked when the stream is made, before any chunk is taken.
      assert_raise ArgumentError, ~r/p must be/, fn -> LogisticMap.stream([[1]], 0, 22) end

      assert_raise ArgumentError, ~r/batch must be a positive integer/, fn ->
        LogisticMap.stream([[1]], 61, 22, batch: 0)
      end

      assert_raise ArgumentError, ~r/chunks must be an Enumerable/, fn -> LogisticMap.stream(:x, 61, 22) end
    end
  end

  describe "sizes are checked before allocating" do
    test "results that cannot fit raise ArgumentError naming the bytes needed and available" do
      huge = 1..(1 <<< 40)
      message = ~r/needs about \d+ bytes of memory .* more than the \d+ bytes .* available/

      for call <- [
            fn -> LogisticMap.run(huge, 61, 22) end,
            fn -> LogisticMap.run_windows(huge, 61, 22) end,
            fn -> LogisticMap.run_windows(1..(1 <<< 33), 61, 22) end,
            fn -> Pure.run(huge, 61, 22) end,
            fn -> Kiln.empty_call(huge) end,
            fn -> Binary.from_list(huge) end,
            fn -> Binary.iota(0, 1 <<< 40) end,
            fn -> Buffer.upload(huge, backend: :cpu) end,
            fn -> Cluster.run(huge, 61, 22, nodes: [node()]) end,
            fn -> [huge] |> LogisticMap.stream(61, 22) |> Enum.to_list() end
          ] do
        assert_raise ArgumentError, message, call
      end

      # The bytes available are read at the call; the machine's free memory moves between two
      # reads, so the message's figure is compared with readings taken just before and after.
      {before, _source} = Kiln.Memory.available()
      error = assert_raise ArgumentError, fn -> LogisticMap.run(huge, 61, 22) end
      {later, _source} = Kiln.Memory.available()
      assert error.message =~ "#{(1 <<< 40) * 24} bytes"
      [_, named] = Regex.run(~r/more than the (\d+) bytes/, error.message)
      named = String.to_integer(named)
      slack = 1 <<< 30

      assert named >= min(before, later) - slack and named <= max(before, later) + slack,
             "#{named} bytes named, #{before} and #{later} read around the call"
    end
  end

  describe "byte order" do
    test "endianness: writes and reads :little and :big explicitly; :native is the machine's" do
      list = [1, -2, int64_min(), int64_max(), 0x0102_0304_0506_0708]
      big = for x <- list, into: <<>>, do: <<x::signed-big-64>>
      little = for x <- list, into: <<>>, do: <<x::signed-little-64>>
      native = for x <- list, into: <<>>, do: <<x::signed-native-64>>

      assert Binary.from_list(list, endianness: :big) == big
      assert Binary.from_list(list, endianness: :little) == little
      assert Binary.from_list(list) == native
      assert Binary.from_list(list, endianness: :native) == native
      assert native == if(System.endianness() == :little, do: little, else: big)

      assert Binary.to_list(big, endianness: :big) == list
      assert Binary.to_list(little, endianness: :little) == list
      assert Binary.to_list(native) == list
      # Read in the wrong order, the bytes are other numbers: the reason the option exists.
      refute Binary.to_list(big, endianness: :little) == list

      assert_raise ArgumentError, ~r/endianness must be :native, :little or :big, got :middle/, fn ->
        Binary.from_list(list, endianness: :middle)
      end
    end

    test "Kiln's binaries are row-major native s64, the bytes Nx.from_binary(bin, :s64) reads" do
      # What Nx's binary backend reads for {:s, 64} and Nx.to_binary/1 writes.
      list = random_int64s(100)
      nx_bytes = for x <- list, into: <<>>, do: <<x::signed-size(64)-native>>
      assert Binary.from_list(list) == nx_bytes

      assert LogisticMap.run(nx_bytes, 61, 22) ==
               for(x <- Pure.run(list, 61, 22), into: <<>>, do: <<x::signed-64-native>>)
    end
  end

  defp max_taken(at_least) do
    receive do
      {:taken, i} -> max_taken(max(i, at_least))
    after
      0 -> at_least
    end
  end
end

# config :kiln defaults and the :max_memory bound: application env is global, so not async.
defmodule Kiln.ConfigTest do
  use ExUnit.Case, async: false

  alias Kiln.{Buffer, Cluster, LogisticMap}
  alias Kiln.LogisticMap.Pure

  setup do
    on_exit(fn ->
      for key <- [:backend, :device, :host_share, :iterations, :max_memory],
          do: Application.delete_env(:kiln, key)
    end)
  end

  test "backend, device, host_share and iterations default to the configuration, and calls override it" do
    Application.put_env(:kiln, :iterations, 3)
    expected = Pure.run([1, 2, 3], 61, 22, iterations: 3)
    assert expected != Pure.run([1, 2, 3], 61, 22, iterations: 10)
    assert LogisticMap.run([1, 2, 3], 61, 22) == expected
    assert Pure.run([1, 2, 3], 61, 22) == expected
    assert Cluster.run([1, 2, 3], 61, 22, nodes: [node()]) == expected
    assert Buffer.upload([1, 2, 3], backend: :cpu) |> Buffer.run(61, 22) |> Buffer.to_list() == expected
    assert LogisticMap.run([1, 2, 3], 61, 22, iterations: 10) == [28, 25, 37]

    Application.put_env(:kiln, :backend, :scalar)
    assert {_, %{backend: :scalar}} = LogisticMap.run_stats([1], 61, 22)
    assert {_, %{backend: :cpu}} = LogisticMap.run_stats([1], 61, 22, backend: :cpu)
    assert Buffer.upload([1]).backend == :scalar

    Application.put_env(:kiln, :device, 5)
    assert_raise ArgumentError, ~r/device index 5 is out of range/, fn -> LogisticMap.run([1], 61, 22) end
    assert LogisticMap.run([1], 61, 22, device: 0) == Pure.run([1], 61, 22, iterations: 3)

    Application.put_env(:kiln, :host_share, false)
    assert Kiln.Options.default(:host_share) == false
    assert LogisticMap.run([1], 61, 22, device: 0, iterations: 10) == [28]
  end

  test "a call with only :iterations (checked in a guard there) takes the configuration and raises as any other" do
    Application.put_env(:kiln, :backend, :scalar)
    assert {[r], %{backend: :scalar}} = LogisticMap.run_stats([1], 61, 22, iterations: 2)
    assert [r] == Pure.run([1], 61, 22, iterations: 2)
    Application.put_env(:kiln, :device, 5)

    assert_raise ArgumentError, ~r/device index 5 is out of range/, fn ->
      LogisticMap.run([1], 61, 22, iterations: 2)
    end

    Application.delete_env(:kiln, :device)
    Application.delete_env(:kiln, :backend)
    assert {[^r], %{backend: :pure}} = LogisticMap.run_stats([1], 61, 22, iterations: 2)

    for bad <- [-1, 1.0, nil, :ten, 2 ** 63] do
      assert_raise ArgumentError, ~r/^iterations must be a non-negative integer/, fn ->
        LogisticMap.run([1], 61, 22, iterations: bad)
      end
    end

    for {p, mu} <- [{0, 22}, {2 ** 32, 22}, {61.0, 22}, {61, 2 ** 63}, {61, :mu}],
        opts <- [[], [iterations: 2]] do
      assert_raise ArgumentError, ~r/^(p|mu) must be an integer/, fn -> LogisticMap.run([1], p, mu, opts) end
    end

    # Of two bad configured values, the same one is named whatever the options' shape.
    Application.put_env(:kiln, :backend, :tpu)
    Application.put_env(:kiln, :iterations, -1)

    for opts <- [[], [chunk_size: 0]] do
      assert_raise ArgumentError, ~r/config :kiln, backend: unknown backend :tpu/, fn ->
        LogisticMap.run([1], 61, 22, opts)
      end
    end
  end

  test "a bad configured value raises ArgumentError naming the configuration; unknown options still raise" do
    Application.put_env(:kiln, :backend, :tpu)

    assert_raise ArgumentError, ~r/config :kiln, backend: unknown backend :tpu/, fn ->
      LogisticMap.run([1], 61, 22)
    end

    assert LogisticMap.run([1], 61, 22, backend: :cpu) == [28]
    Application.put_env(:kiln, :iterations, -1)

    assert_raise ArgumentError, ~r/config :kiln, iterations: iterations must be a non-negative/, fn ->
      Pure.run([1], 61, 22)
    end

    Application.delete_env(:kiln, :iterations)

    # host_share is read where the engine runs: a tiny input mapped in the calling process has
    # no use for it, a run in the engine raises naming it.
    Application.delete_env(:kiln, :backend)
    Application.put_env(:kiln, :host_share, :maybe)
    assert LogisticMap.run([1], 61, 22) == [28]

    assert_raise ArgumentError,
                 ~r/config :kiln, host_share: host_share must be true or false, got :maybe/,
                 fn ->
                   LogisticMap.run([1], 61, 22, backend: :cpu)
                 end

    assert_raise ArgumentError, ~r/config :kiln, host_share/, fn ->
      LogisticMap.run_stats([1], 61, 22, backend: :cpu)
    end

    assert_raise ArgumentError, ~r/config :kiln, host_share/, fn ->
      LogisticMap.run(Enum.to_list(1..1000), 61, 22)
    end

    Application.delete_env(:kiln, :host_share)

    assert_raise ArgumentError, ~r/unknown keys \[:iteration\]/, fn ->
      LogisticMap.run([1], 61, 22, backend: :cpu, iteration: 1)
    end
  end

  test "max_memory bounds a call's data: small calls pass, larger ones and endless streams raise" do
    Application.put_env(:kiln, :max_memory, 1_000_000)
    assert LogisticMap.run(1..10_000, 61, 22) == Pure.run(1..10_000, 61, 22)

    assert_raise ArgumentError,
                 ~r/needs about 2400000 bytes .* more than the 1000000 bytes .*config :kiln, max_memory/,
                 fn ->
                   LogisticMap.run(1..100_000, 61, 22)
                 end

    assert_raise ArgumentError, ~r/an Enumerable of more than \d+ elements/, fn ->
      LogisticMap.run_windows(Stream.repeatedly(fn -> 1 end), 61, 22, window: 1000)
    end

    assert_raise ArgumentError, ~r/an Enumerable of more than \d+ elements/, fn ->
      LogisticMap.run(Stream.repeatedly(fn -> 1 end), 61, 22)
    end

    # A stream of chunks is bounded by its batches, whatever its length.
    assert Stream.repeatedly(fn -> [1] end)
           |> LogisticMap.stream(61, 22, batch: 1000)
           |> Enum.take(5000)
           |> length() == 5000
  end
end
