# Kiln.Cluster across real BEAM nodes: peers started on this machine, nodes that are down or lack Kiln.
defmodule Kiln.ClusterPeersTest do
  use ExUnit.Case, async: false

  import Kiln.TestHelper
  alias Kiln.{Cluster, LogisticMap}

  # Peers need this VM to be a distributed node, which needs epmd.
  unless System.find_executable("epmd") do
    @moduletag skip: "no epmd on PATH, so this VM cannot become a distributed node for peers"
  end

  setup_all do
    :ok = distribute!()
    peers = for _ <- 1..2, do: start_peer!(with_kiln: true)
    bare = start_peer!(with_kiln: false)
    # The peers are linked to this module's process and end with it; stop them sooner if they
    # are still there.
    on_exit(fn -> for {pid, _node} <- [bare | peers], do: stop_peer(pid) end)
    %{peers: Enum.map(peers, &elem(&1, 1)), bare: elem(bare, 1)}
  end

  setup do
    seed()
    :ok
  end

  defp distribute! do
    unless Node.alive?() do
      System.cmd(System.find_executable("epmd"), ["-daemon"])
      name = :"kiln_test_#{System.unique_integer([:positive])}@127.0.0.1"

      case Node.start(name, :longnames) do
        {:ok, _} -> :ok
        {:error, reason} -> raise "this VM cannot become a distributed node: #{inspect(reason)}"
      end
    end

    :ok
  end

  defp start_peer!(with_kiln: with_kiln) do
    paths = if with_kiln, do: Enum.flat_map(:code.get_path(), &[~c"-pa", &1]), else: []
    cookie = Atom.to_charlist(Node.get_cookie())

    {:ok, pid, node} =
      :peer.start_link(%{
        name: :peer.random_name(),
        host: ~c"127.0.0.1",
        longnames: true,
        # Peers connect only to this node: a peer stopped by one test is then nobody else's
        # neighbour, and `global` disconnects no other peer to prevent overlapping partitions.
        args: [~c"-setcookie", cookie, ~c"-connect_all", ~c"false" | paths]
      })

    if with_kiln, do: {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:kiln])
    {pid, node}
  end

  defp stop_peer(pid) do
    :peer.stop(pid)
  catch
    :exit, _ -> :ok
  end

  defp mailbox_is_empty, do: Process.info(self(), :message_queue_len) == {:message_queue_len, 0}

  test "this node and two peers map one input, each taking parts, with Pure's results", %{peers: peers} do
    nodes = [node() | peers]

    for shape <- [:binary, :list], round <- 1..3 do
      {p, mu} = {random_p(), random_mu()}
      list = random_int64s(20_000 + round)
      data = if shape == :binary, do: Kiln.Binary.from_list(list), else: list
      expected = LogisticMap.run(data, p, mu, backend: :scalar, iterations: round)

      {result, stats} =
        Cluster.run_stats(data, p, mu, nodes: nodes, parts: 13, iterations: round, backend: :cpu)

      assert_same(result, expected, shape: shape, p: p, mu: mu)
      assert stats.failures == %{}
      assert Enum.sum(Map.values(stats.parts)) == 13
      # Six workers ask for parts at once and there are thirteen: every node maps some.
      for node <- nodes, do: assert(stats.parts[node] >= 1, "#{node} mapped no part: #{inspect(stats)}")
    end

    assert mailbox_is_empty()
  end

  test "the same results agree with the pure Elixir definition", %{peers: peers} do
    list = random_int64s(300)
    {p, mu} = {random_p(), random_mu()}
    expected = Kiln.LogisticMap.Pure.run(list, p, mu, iterations: 7)
    assert Cluster.run(list, p, mu, nodes: peers, parts: 5, iterations: 7) == expected

    assert Cluster.run(1..300, 61, 22, nodes: peers) ==
             Kiln.LogisticMap.Pure.run(Enum.to_list(1..300), 61, 22)
  end

  test "a node that is down, or has no Kiln, takes no parts; the others map everything",
       %{peers: [peer | _], bare: bare} do
    absent = :"absent_#{System.unique_integer([:positive])}@127.0.0.1"
    data = Kiln.Binary.from_list(random_int64s(10_007))
    expected = LogisticMap.run(data, 6_700_417, 22, backend: :scalar)

    {result, stats} = Cluster.run_stats(data, 6_700_417, 22, nodes: [absent, bare, peer], parts: 9)

    assert result == expected
    assert stats.parts[peer] == 9
    assert stats.parts[absent] == 0 and stats.parts[bare] == 0
    assert stats.failures[absent] =~ "not connected"
    assert stats.failures[bare] =~ "Kiln is not loaded there"
    assert mailbox_is_empty()
  end

  test "a peer stopped between runs is skipped" do
    {pid, node} = start_peer!(with_kiln: true)
    data = Kiln.Binary.from_list(random_int64s(5_000))
    expected = LogisticMap.run(data, 61, -22, backend: :scalar)
    assert Cluster.run(data, 61, -22, nodes: [node, node()], parts: 4) == expected
    stop_peer(pid)
    {result, stats} = Cluster.run_stats(data, 61, -22, nodes: [node, node()], parts: 4)
    assert result == expected
    assert stats.parts[node()] == 4
    assert Map.has_key?(stats.failures, node)
  end

  test "a kernel written in Elixir, mapped by the nodes that have it", %{peers: [a, b]} do
    module = :"Elixir.ClusterKernels#{System.unique_integer([:positive])}"

    source = """
    defmodule #{inspect(module)} do
      import Kiln.Kernel
      defkernel step(x, a, m), do: rem(a * x + 1, m)
    end
    """

    # Compiled here and on one peer only: the other has no such kernel.
    Code.compile_string(source)
    :erpc.call(a, Code, :compile_string, [source])
    data = Kiln.Binary.from_list(random_int64s(30_000) |> Enum.map(&rem(&1, 1_000_000)))
    expected = apply(module, :step, [data, 7, 1_000_003, [iterations: 3]])

    {result, stats} =
      Cluster.map_kernel_stats(data, {module, :step, [7, 1_000_003]}, nodes: [a, b], parts: 8, iterations: 3)

    assert result == expected
    assert stats.parts[a] == 8 and stats.parts[b] == 0
    assert stats.failures[b] =~ "#{inspect(module)}.step/4 is not loaded there"

    # A fault in the data is raised as on one node, with the input's first faulting element.
    list = Enum.to_list(1..20_000) |> List.replace_at(15_000, 0) |> List.replace_at(9_001, 0)

    :erpc.call(b, Code, :compile_string, [
      "defmodule #{inspect(module)}.Inv do\n import Kiln.Kernel\n defkernel inv(x), do: div(1, x)\nend"
    ])

    Code.compile_string(
      "defmodule #{inspect(module)}.Inv do\n import Kiln.Kernel\n defkernel inv(x), do: div(1, x)\nend"
    )

    :erpc.call(a, Code, :compile_string, [
      "defmodule #{inspect(module)}.Inv do\n import Kiln.Kernel\n defkernel inv(x), do: div(1, x)\nend"
    ])

    assert_raise ArithmeticError, "element 9001 (0), iteration 1: division by zero", fn ->
      Cluster.map_kernel(list, {Module.concat(module, Inv), :inv, []}, nodes: [a, b], parts: 10)
    end

    assert mailbox_is_empty()
  end

  test "a node whose part outlasts the timeout takes no more parts", %{peers: [a, b]} do
    module = :"Elixir.ClusterSlow#{System.unique_integer([:positive])}"
    # The same module everywhere but on `a`, where it sleeps far past the timeout.
    quick = "defmodule #{inspect(module)} do\n def f(part, _opts), do: part\n def f_element(x), do: x\nend"
    slow = String.replace(quick, "do: part", "do: Process.sleep(5_000) && part")
    Code.compile_string(quick)
    :erpc.call(b, Code, :compile_string, [quick])
    :erpc.call(a, Code, :compile_string, [slow])
    data = Kiln.Binary.from_list(random_int64s(1_000))

    {result, stats} =
      Cluster.map_kernel_stats(data, {module, :f, []}, nodes: [a, b], parts: 4, in_flight: 1, timeout: 300)

    assert result == data
    assert stats.parts == %{a => 0, b => 4}
    assert stats.failures == %{a => "timed out"}
    assert mailbox_is_empty()
  end

  test "options per node override the shared ones", %{peers: [a, b]} do
    data = Kiln.Binary.from_list(random_int64s(4_000))
    expected = LogisticMap.run(data, 6_700_417, 22, backend: :scalar)
    # The shared device index exists nowhere; each node's own options name one that does.
    nodes = [{a, backend: :scalar, device: 0}, {b, backend: :cpu, device: 0}]
    assert Cluster.run(data, 6_700_417, 22, nodes: nodes, device: 5, parts: 6) == expected
  end

  test "when every node rejects the run, the reasons are raised", %{peers: peers} do
    data = Kiln.Binary.from_list([1, 2, 3])

    error =
      assert_raise ArgumentError, fn ->
        Cluster.run(data, 61, 22, nodes: peers, backend: :cpu, device: 9)
      end

    assert error.message =~ "no node left to map"
    for node <- peers, do: assert(error.message =~ "#{node}: backend cpu has 1 device(s); device index 9")

    absent = :"absent_#{System.unique_integer([:positive])}@127.0.0.1"
    error = assert_raise Kiln.Error, fn -> Cluster.run(data, 61, 22, nodes: [absent]) end
    assert error.kind == :node_error
    assert error.message =~ "#{absent}: not connected"
    assert mailbox_is_empty()
  end
end

# Kiln.Cluster's checks and small cases, which need no other node.
defmodule Kiln.ClusterTest do
  use ExUnit.Case, async: true

  alias Kiln.Cluster

  test "bad arguments raise before any node is asked" do
    assert_raise ArgumentError, ~r/p must be an integer in 1..4294967295/, fn -> Cluster.run([1], 0, 22) end

    assert_raise ArgumentError, ~r/nodes must be a non-empty list/, fn ->
      Cluster.run([1], 61, 22, nodes: [])
    end

    assert_raise ArgumentError, ~r/nodes must be atoms or/, fn -> Cluster.run([1], 61, 22, nodes: ["a"]) end

    assert_raise ArgumentError, ~r/is listed twice/, fn ->
      Cluster.run([1], 61, 22, nodes: [node(), node()])
    end

    assert_raise ArgumentError, ~r/options for node/, fn ->
      Cluster.run([1], 61, 22, nodes: [{node(), parts: 3}])
    end

    assert_raise ArgumentError, ~r/parts must be a positive integer/, fn ->
      Cluster.run([1], 61, 22, parts: 0)
    end

    assert_raise ArgumentError, ~r/unknown backend/, fn -> Cluster.run([1], 61, 22, backend: :tpu) end
    assert_raise ArgumentError, ~r/not an integer/, fn -> Cluster.run([1, :a], 61, 22) end
    assert_raise ArgumentError, ~r/unknown keys/, fn -> Cluster.run([1], 61, 22, window: 3) end
  end

  test "results are joined by the NIF, aligned or not" do
    a = Kiln.Binary.from_list(Enum.to_list(1..300_000))
    # A sub-binary one byte into its parent is not aligned for int64.
    <<_, b::binary-size(16), _::binary>> = <<0, 7::64-native, -8::64-native, 0>>
    assert {:ok, joined} = Kiln.Native.concat([a, <<>>, b, a])
    assert Kiln.Binary.to_list(joined) == Enum.to_list(1..300_000) ++ [7, -8] ++ Enum.to_list(1..300_000)
    assert Kiln.Native.concat([]) == {:ok, <<>>}
    assert_raise ArgumentError, fn -> Kiln.Native.concat([<<1, 2, 3>>]) end
    assert_raise ArgumentError, fn -> Kiln.Native.concat([a | :tail]) end
  end

  test "kernels on this node: results, the input's first fault across parts, bad arguments" do
    [{module, _}] =
      Code.compile_string("""
      defmodule ClusterLocalKernels#{System.unique_integer([:positive])} do
        import Kiln.Kernel
        defkernel inv(x, a), do: div(a, x)
      end
      """)

    assert Cluster.map_kernel([1, 2, 4, -8], {module, :inv, [8]}, nodes: [node()], parts: 4) == [8, 4, 2, -1]
    list = Enum.to_list(1..50_000) |> List.replace_at(40_000, 0) |> List.replace_at(12_345, 0)

    for parts <- [1, 7, 50] do
      assert_raise ArithmeticError, "element 12345 (0), iteration 1: division by zero", fn ->
        Cluster.map_kernel(list, {module, :inv, [1]}, nodes: [node()], parts: parts)
      end
    end

    assert_raise ArgumentError,
                 ~r/element 3 \(-1\), iteration 1: an intermediate value does not fit in int64/,
                 fn ->
                   Cluster.map_kernel([1, 1, 1, -1], {module, :inv, [-0x8000_0000_0000_0000]},
                     nodes: [node()],
                     parts: 2,
                     iterations: 1
                   )
                 end

    assert_raise ArgumentError, ~r/is not a kernel defined with Kiln.Kernel.defkernel/, fn ->
      Cluster.map_kernel([1], {module, :nope, [1]})
    end

    assert_raise ArgumentError, ~r/kernel parameters must be integers that fit in int64/, fn ->
      Cluster.map_kernel([1], {module, :inv, [1.5]})
    end

    assert Process.info(self(), :message_queue_len) == {:message_queue_len, 0}
  end

  test "empty inputs, and more parts than elements" do
    assert Cluster.run([], 61, 22) == []
    assert Cluster.run(<<>>, 61, 22) == <<>>
    {result, stats} = Cluster.run_stats([1, 2, 3], 61, 22, nodes: [node()], parts: 50)
    assert result == [28, 25, 37]
    assert stats.parts[node()] == 3
  end
end
