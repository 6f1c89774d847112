# One map spread over several BEAM nodes, each running Kiln on its own devices.
defmodule Kiln.Cluster do
  @moduledoc """
  Runs the logistic map over several BEAM nodes: the input is cut into parts, every node maps
  the parts it takes with its own Kiln (its own CPU cores and GPUs), and the results come back
  in order, exactly what `Kiln.LogisticMap.run/4` gives on one node.

      Kiln.Cluster.run(data, 6_700_417, 22, nodes: [node() | Node.list()], backend: :cuda)

  Nodes take parts from one queue as they finish the previous ones, so a faster node maps more
  of the input. A node that fails (it goes down, has no Kiln loaded, or cannot run the backend
  asked for) takes no more parts, and the part it was mapping goes to the others; the call
  raises only when no node is left to map what remains, naming every node's failure
  (`ArgumentError` when each failure was an argument the node rejected, such as a backend it
  does not have; `Kiln.Error` with kind `:node_error` otherwise).

  Parts cross the distribution channel as binaries of native-endian int64, whatever the input's
  shape: a list is converted once here, and the result converted back. Each remote part costs
  its copy over the network both ways, so spreading pays where the map is expensive (many
  iterations) or the nodes' devices are faster than the links.

  ## Options

    * `:nodes` - the nodes to use, each an atom or `{node, opts}` whose `opts` override the run
      options on that node (e.g. `{:"b@host", device: 1}`); default `[node() | Node.list()]`.
    * `:parts` - how many parts to cut the input into (default: four per node and in-flight
      slot); never more than the elements.
    * `:in_flight` - parts each node holds at once (default `2`: one mapping while the next
      crosses the network).
    * `:timeout` - milliseconds one part may take on a node before that node counts as failed
      (default `:infinity`).
    * The options of `Kiln.LogisticMap.run/4` (`:backend`, `:device`, `:iterations`,
      `:chunk_size`, `:host_share`), used on every node.
  """

  alias Kiln.Args

  @run_keys [:backend, :device, :iterations, :chunk_size, :host_share]

  @doc """
  Applies the map to every element of `data` on the given nodes; see the module doc.

      iex> Kiln.Cluster.run(1..3, 61, 22, nodes: [node()])
      [28, 25, 37]
  """
  @spec run([integer] | Range.t() | binary, pos_integer, integer, keyword) :: [integer] | binary
  def run(data, p, mu, opts \\ []) do
    {result, _stats} = run_stats(data, p, mu, opts)
    result
  end

  @typedoc "What each node did: parts mapped, and why a node stopped taking parts."
  @type stats :: %{parts: %{node => non_neg_integer}, failures: %{node => String.t()}}

  @doc """
  Like `run/4`, and also says which node mapped how many parts (`:parts`, every node listed)
  and why any node stopped taking parts (`:failures`, a message per node).

      iex> {result, stats} = Kiln.Cluster.run_stats([1, 2, 3], 61, 22, nodes: [node()], parts: 3)
      iex> {result, stats.parts, stats.failures}
      {[28, 25, 37], %{node() => 3}, %{}}
  """
  @spec run_stats([integer] | Range.t() | binary, pos_integer, integer, keyword) ::
          {[integer] | binary, stats}
  def run_stats(data, p, mu, opts \\ []) do
    opts =
      Keyword.validate!(opts,
        nodes: nil,
        parts: nil,
        in_flight: 2,
        timeout: :infinity,
        backend: :auto,
        device: 0,
        iterations: 10,
        chunk_size: 0,
        host_share: true
      )

    p = Args.p!(p)
    mu = Args.mu!(mu)
    run_opts = run_options!(Keyword.take(opts, @run_keys))
    nodes = nodes!(opts[:nodes] || [node() | Node.list()], run_opts)
    in_flight = positive!(:in_flight, opts[:in_flight])
    timeout = timeout!(opts[:timeout])
    {nif_data, as_list} = Args.data!(data)
    binary = if is_binary(nif_data), do: nif_data, else: Args.unwrap!(Kiln.Native.convert(nif_data, false))
    count = div(byte_size(binary), 8)
    parts = min(positive!(:parts, opts[:parts] || 4 * length(nodes) * in_flight), max(count, 1))

    {result, stats} =
      if count == 0,
        do: {<<>>, %{parts: Map.new(nodes, &{elem(&1, 0), 0}), failures: %{}}},
        else: spread(binary, count, parts, p, mu, nodes, in_flight, timeout)

    {if(as_list, do: Kiln.Binary.to_list(result), else: result), stats}
  end

  # ---- argument checks ---------------------------------------------------------------------------

  # Checked here, once, so that a bad option raises before any node is asked; whether a node can
  # run the backend is for the node to say.
  defp run_options!(run_opts) do
    Args.backend!(run_opts[:backend])
    Args.device!(run_opts[:device])
    Args.iterations!(run_opts[:iterations])
    Args.chunk_size!(run_opts[:chunk_size])
    Args.boolean!(:host_share, run_opts[:host_share])
    run_opts
  end

  defp nodes!(nodes, run_opts) when is_list(nodes) and nodes != [] do
    nodes =
      Enum.map(nodes, fn
        node when is_atom(node) ->
          {node, run_opts}

        {node, opts} when is_atom(node) and is_list(opts) ->
          unless Keyword.keyword?(opts) and Enum.all?(Keyword.keys(opts), &(&1 in @run_keys)) do
            raise ArgumentError,
                  "options for node #{inspect(node)} must be a keyword list of " <>
                    "#{inspect(@run_keys)}, got #{inspect(opts)}"
          end

          {node, run_options!(Keyword.merge(run_opts, opts))}

        other ->
          raise ArgumentError, "nodes must be atoms or {node, options} tuples, got #{inspect(other)}"
      end)

    case nodes -- Enum.uniq_by(nodes, &elem(&1, 0)) do
      [] -> nodes
      [{dup, _} | _] -> raise ArgumentError, "node #{inspect(dup)} is listed twice"
    end
  end

  defp nodes!(nodes, _run_opts) do
    raise ArgumentError, "nodes must be a non-empty list of nodes, got #{inspect(nodes)}"
  end

  defp positive!(_name, n) when is_integer(n) and n > 0, do: n

  defp positive!(name, n) do
    raise ArgumentError, "#{name} must be a positive integer, got #{inspect(n)}"
  end

  defp timeout!(:infinity), do: :infinity
  defp timeout!(t) when is_integer(t) and t > 0, do: t

  defp timeout!(t) do
    raise ArgumentError, "timeout must be a positive integer (ms) or :infinity, got #{inspect(t)}"
  end

  # ---- the spread ----------------------------------------------------------------------------------

  # Workers (in_flight per node, each monitored by the caller and monitoring it) ask the caller for
  # parts; the caller hands them out in order, puts back the part of a worker whose node failed,
  # and collects the results. Whatever happens, no worker outlives the call and none of their
  # messages is left in the caller's mailbox.
  defp spread(binary, count, parts, p, mu, nodes, in_flight, timeout) do
    caller = self()

    monitored =
      for {node, opts} <- nodes, _slot <- 1..in_flight, into: %{} do
        {pid, ref} =
          spawn_monitor(fn -> work(caller, Process.monitor(caller), node, p, mu, opts, timeout) end)

        {pid, {ref, node}}
      end

    state = %{
      binary: binary,
      bounds:
        List.to_tuple(for i <- 0..(parts - 1), do: {div(count * i, parts), div(count * (i + 1), parts)}),
      queue: Enum.to_list(0..(parts - 1)),
      results: %{},
      parts: parts,
      monitored: monitored,
      node_of: Map.new(monitored, fn {pid, {_ref, node}} -> {pid, node} end),
      workers: MapSet.new(Map.keys(monitored)),
      waiting: MapSet.new(),
      holding: %{},
      failures: %{},
      done_by: Map.new(nodes, &{elem(&1, 0), 0})
    }

    try do
      loop(state)
    catch
      kind, reason ->
        # Not one of ours (those end the workers first): end them anyway, then re-raise.
        for {pid, {ref, _}} <- monitored do
          Process.exit(pid, :kill)
          Process.demonitor(ref, [:flush])
        end

        :erlang.raise(kind, reason, __STACKTRACE__)
    end
  end

  defp loop(%{results: results, parts: parts} = st) when map_size(results) == parts do
    end_workers(st)
    result = Enum.map(0..(parts - 1), &Map.fetch!(results, &1)) |> Kiln.Native.concat() |> Args.unwrap!()
    {result, %{parts: st.done_by, failures: Map.new(st.failures, fn {node, {_kind, msg}} -> {node, msg} end)}}
  end

  defp loop(st) do
    if MapSet.size(st.workers) == 0, do: no_node_left!(st)

    receive do
      {:ready, worker} ->
        case st.queue do
          [i | rest] ->
            {b, e} = elem(st.bounds, i)
            send(worker, {:part, i, binary_part(st.binary, b * 8, (e - b) * 8)})
            loop(%{st | queue: rest, holding: Map.put(st.holding, worker, i)})

          [] ->
            # Nothing to hand out now; a failing worker may still put a part back.
            send(worker, :wait)
            loop(%{st | waiting: MapSet.put(st.waiting, worker)})
        end

      {:result, worker, i, result} ->
        node = Map.fetch!(st.node_of, worker)

        loop(%{
          st
          | results: Map.put(st.results, i, result),
            holding: Map.delete(st.holding, worker),
            done_by: Map.update!(st.done_by, node, &(&1 + 1))
        })

      {:failed, worker, reason} ->
        loop(fail(st, worker, reason))

      {:DOWN, _ref, :process, worker, reason} when is_map_key(st.monitored, worker) ->
        st = %{st | monitored: Map.delete(st.monitored, worker)}

        if MapSet.member?(st.workers, worker),
          do: loop(fail(st, worker, {:node, "its worker ended: #{inspect(reason, limit: 8)}"})),
          else: loop(st)
    end
  end

  # The worker's node takes no more parts; the part it held goes back to the front of the queue,
  # and the workers waiting for one are woken.
  defp fail(st, worker, reason) do
    {held, holding} = Map.pop(st.holding, worker)
    for w <- st.waiting, do: send(w, :wake)

    %{
      st
      | queue: if(held, do: [held | st.queue], else: st.queue),
        holding: holding,
        waiting: MapSet.new(),
        workers: MapSet.delete(st.workers, worker),
        failures: Map.put(st.failures, Map.fetch!(st.node_of, worker), reason)
    }
  end

  defp no_node_left!(st) do
    end_workers(st)
    reasons = Enum.map_join(st.failures, "; ", fn {node, {_kind, msg}} -> "#{node}: #{msg}" end)
    message = "no node left to map #{length(st.queue)} of #{st.parts} parts (#{reasons})"

    if Enum.all?(st.failures, fn {_node, {kind, _}} -> kind == :argument end),
      do: raise(ArgumentError, message),
      else: raise(Kiln.Error, kind: :node_error, message: message)
  end

  # Ends every worker still running and waits for each to be gone, so that any message it sent
  # has arrived (a process's messages come before its DOWN), then drops those messages.
  defp end_workers(st) do
    for {pid, {ref, _node}} <- st.monitored do
      Process.exit(pid, :kill)

      receive do
        {:DOWN, ^ref, :process, ^pid, _} -> :ok
      end

      flush(pid)
    end
  end

  defp flush(pid) do
    receive do
      {:ready, ^pid} -> flush(pid)
      {:result, ^pid, _, _} -> flush(pid)
      {:failed, ^pid, _} -> flush(pid)
    after
      0 -> :ok
    end
  end

  defp work(caller, caller_ref, node, p, mu, opts, timeout) do
    send(caller, {:ready, self()})

    receive do
      {:part, i, part} ->
        case call(node, part, p, mu, opts, timeout) do
          {:ok, result} ->
            send(caller, {:result, self(), i, result})
            work(caller, caller_ref, node, p, mu, opts, timeout)

          {:error, reason} ->
            send(caller, {:failed, self(), reason})
        end

      :wait ->
        receive do
          :wake -> work(caller, caller_ref, node, p, mu, opts, timeout)
          {:DOWN, ^caller_ref, _, _, _} -> :ok
        end

      {:DOWN, ^caller_ref, _, _, _} ->
        :ok
    end
  end

  defp call(node, part, p, mu, opts, timeout) do
    {:ok, :erpc.call(node, Kiln.LogisticMap, :run, [part, p, mu, opts], timeout)}
  rescue
    e in ErlangError -> {:error, classify(e.original)}
  catch
    :exit, reason -> {:error, {:node, "exited: #{inspect(reason, limit: 8)}"}}
  end

  # :erpc raises what went wrong there as {:exception, reason, stacktrace}, and its own failures
  # as {:erpc, why}.
  defp classify({:exception, %ArgumentError{} = e, _}), do: {:argument, Exception.message(e)}
  defp classify({:exception, %Kiln.Error{} = e, _}), do: {:engine, Exception.message(e)}

  defp classify({:exception, :undef, [{Kiln.LogisticMap, :run, _, _} | _]}),
    do: {:node, "Kiln is not loaded there"}

  defp classify({:exception, e, _}) when is_exception(e), do: {:node, Exception.message(e)}
  defp classify({:erpc, :noconnection}), do: {:node, "not connected (down, or never reached)"}
  defp classify({:erpc, :timeout}), do: {:node, "timed out"}
  defp classify(other), do: {:node, inspect(other, limit: 8)}
end
