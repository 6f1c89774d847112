# One map spread over several BEAM nodes, each running Kiln on its own devices.
defmodule Kiln.Cluster do
  @moduledoc """
  Runs the logistic map, or a kernel written in Elixir (`map_kernel/3`), over several BEAM
  nodes: the input is cut into parts, every node maps
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
      slot, or one when the only node is this one); never more than the elements.
    * `:in_flight` - parts each node holds at once (default `2`: one mapping while the next
      crosses the network).
    * `:timeout` - milliseconds one part may take on a node before that node counts as failed
      (default `:infinity`).
    * The options of `Kiln.LogisticMap.run/4` (`:backend`, `:device`, `:iterations`,
      `:chunk_size`, `:host_share`), used on every node; `config :kiln` sets their defaults on
      the calling node (see `Kiln.Options`), and those values go to every node.

  `:in_flight` is at most 1024 and `:timeout` at most 2^32 - 1 ms. Data can be any `Enumerable`
  of integers, as in `Kiln.LogisticMap`; anything the call cannot take (options that are not a
  keyword list, a node that is not a node name, a kernel that is not `{module, name, params}`)
  raises `ArgumentError` before any node is asked.
  """

  alias Kiln.{Args, Memory, Options}
  require Kiln.Args

  @spread_keys [:nodes, :parts, :in_flight, :timeout]
  @run_keys [:backend, :device, :iterations, :chunk_size, :host_share]
  # A kernel's own defaults (those of Kiln.Kernel), not the logistic map's configured ones.
  @kernel_keys [backend: :auto, device: 0, iterations: 1, chunk_size: 0]

  @doc """
  Applies the map to every element of `data` on the given nodes; see the module doc.

      iex> Kiln.Cluster.run(1..3, 61, 22, nodes: [node()])
      [28, 25, 37]
  """
  @spec run(Kiln.LogisticMap.data(), pos_integer, integer, keyword) :: [integer] | binary
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
  @spec run_stats(Kiln.LogisticMap.data(), pos_integer, integer, keyword) ::
          {[integer] | binary, stats}
  def run_stats(data, p, mu, opts \\ []) do
    opts = Options.validate!(opts, @spread_keys ++ @run_keys)
    p = Args.p!(p)
    mu = Args.mu!(mu)
    spread_run(data, {Kiln.LogisticMap, :run, [p, mu]}, opts, @run_keys)
  end

  @doc """
  Applies a kernel written in Elixir (`Kiln.Kernel.defkernel`) to every element of `data` on the
  given nodes: `kernel` is `{module, name, params}`, and every node calls
  `module.name(part, params..., opts)`, so the module must be loaded there too. Options: those
  of `run/4` for the spreading (`:nodes`, `:parts`, `:in_flight`, `:timeout`) and the kernel's
  own (`:iterations`, default `1`, `:backend`, `:device`, `:chunk_size`), which `{node, opts}`
  may override per node.

  A fault in the data (an intermediate value beyond int64, a zero divisor) is no node's failure:
  it raises what the kernel raises on one node, naming the element by its index in the whole
  input, and the lowest such index, as one node would.

      iex> defmodule ClusterDocKernels do
      ...>   import Kiln.Kernel
      ...>   defkernel affine(x, a, b), do: a * x + b
      ...> end
      iex> Kiln.Cluster.map_kernel(1..4, {ClusterDocKernels, :affine, [3, 1]}, nodes: [node()], parts: 2)
      [4, 7, 10, 13]
  """
  @spec map_kernel(Kiln.LogisticMap.data(), {module, atom, [integer]}, keyword) :: [integer] | binary
  def map_kernel(data, kernel, opts \\ []) do
    {result, _stats} = map_kernel_stats(data, kernel, opts)
    result
  end

  @doc "Like `map_kernel/3`, with the statistics of `run_stats/4`."
  @spec map_kernel_stats(Kiln.LogisticMap.data(), {module, atom, [integer]}, keyword) ::
          {[integer] | binary, stats}
  def map_kernel_stats(data, kernel, opts \\ [])

  def map_kernel_stats(data, {module, name, params}, opts)
      when is_atom(module) and is_atom(name) and is_list(params) do
    opts = Options.validate!(opts, @spread_keys ++ @kernel_keys)

    unless Args.proper_list?(params) do
      raise ArgumentError, "kernel parameters must be a proper list, got #{Args.show(params)}"
    end

    for value <- params, not Args.is_int64(value) do
      raise ArgumentError, "kernel parameters must be integers that fit in int64, got #{inspect(value)}"
    end

    arity = length(params) + 2

    unless Code.ensure_loaded?(module) and function_exported?(module, name, arity) and
             function_exported?(module, :"#{name}_element", arity - 1) do
      raise ArgumentError,
            "#{inspect(module)}.#{name}/#{arity} is not a kernel defined with Kiln.Kernel.defkernel"
    end

    spread_run(data, {module, name, params}, opts, Keyword.keys(@kernel_keys))
  end

  def map_kernel_stats(_data, kernel, _opts) do
    raise ArgumentError,
          "kernel must be {module, name, params} (two atoms and a list of integers), got #{Args.show(kernel)}"
  end

  # Checks the spreading options and the input once, here, then spreads `job` over the nodes.
  defp spread_run(data, job, opts, run_keys) do
    run_opts = Keyword.take(opts, run_keys)
    nodes = nodes!(opts[:nodes] || [node() | Node.list()], run_opts, run_keys)
    in_flight = opts[:in_flight]
    timeout = opts[:timeout]
    {nif_data, as_list, n} = Args.data_n!(data)
    # The input as a binary, the parts' results and their join, and the list a list input gets back.
    result_bytes = if as_list, do: Memory.list_bytes(n), else: 0
    Memory.check!(3 * Memory.int64_bytes(n) + result_bytes, fn -> "a spread of #{n} elements" end)
    binary = if is_binary(nif_data), do: nif_data, else: Args.unwrap!(Kiln.Engine.convert(nif_data, false))
    count = div(byte_size(binary), 8)
    # This node alone has nothing to balance and no network to overlap: one part, no copies.
    default_parts = if match?([{n, _}] when n == node(), nodes), do: 1, else: 4 * length(nodes) * in_flight
    parts = min(opts[:parts] || default_parts, max(count, 1))

    {result, stats} =
      if count == 0,
        do: {<<>>, %{parts: Map.new(nodes, &{elem(&1, 0), 0}), failures: %{}}},
        else: spread(binary, count, parts, job, nodes, in_flight, timeout)

    {if(as_list, do: Kiln.Binary.to_list(result), else: result), stats}
  end

  # ---- argument checks ---------------------------------------------------------------------------

  # Checked here, once, so that a bad option raises before any node is asked; whether a node can
  # run the backend is for the node to say.
  defp nodes!(nodes, run_opts, run_keys) when is_list(nodes) and nodes != [] do
    unless Args.proper_list?(nodes) do
      raise ArgumentError, "nodes must be a proper list of nodes, got #{Args.show(nodes)}"
    end

    nodes =
      Enum.map(nodes, fn
        node when is_atom(node) ->
          {node_name!(node), run_opts}

        {node, opts} when is_atom(node) ->
          node = node_name!(node)

          overrides =
            try do
              Options.check_given!(opts, run_keys)
            rescue
              e in ArgumentError ->
                reraise ArgumentError,
                        "options for node #{inspect(node)} must be a keyword list of " <>
                          "#{inspect(run_keys)}: #{Exception.message(e)}",
                        __STACKTRACE__
            end

          {node, Keyword.merge(run_opts, overrides)}

        other ->
          raise ArgumentError, "nodes must be atoms or {node, options} tuples, got #{Args.show(other)}"
      end)

    case nodes -- Enum.uniq_by(nodes, &elem(&1, 0)) do
      [] -> nodes
      [{dup, _} | _] -> raise ArgumentError, "node #{inspect(dup)} is listed twice"
    end
  end

  defp nodes!(nodes, _run_opts, _run_keys) do
    raise ArgumentError, "nodes must be a non-empty list of nodes, got #{Args.show(nodes)}"
  end

  # A node's name is name@host; this node's may be :nonode@nohost, which has one too.
  defp node_name!(node) when is_atom(node) and node not in [nil, true, false] do
    if node == node() or String.contains?(Atom.to_string(node), "@"),
      do: node,
      else: raise(ArgumentError, "#{inspect(node)} is not a node name (name@host)")
  end

  defp node_name!(node), do: raise(ArgumentError, "#{inspect(node)} is not a node name (name@host)")

  # ---- the spread ----------------------------------------------------------------------------------

  # Workers (in_flight per node, each monitored by the caller and monitoring it) ask the caller for
  # parts; the caller hands them out in order, puts back the part of a worker whose node failed,
  # and collects the results. Whatever happens, no worker outlives the call and none of their
  # messages is left in the caller's mailbox.
  defp spread(binary, count, parts, job, nodes, in_flight, timeout) do
    caller = self()

    monitored =
      for {node, opts} <- nodes, _slot <- 1..in_flight, into: %{} do
        {pid, ref} = spawn_monitor(fn -> work(caller, Process.monitor(caller), node, job, opts, timeout) end)

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
      done_by: Map.new(nodes, &{elem(&1, 0), 0}),
      # The data's lowest fault so far: {part, exception naming the element's index in the input}.
      fault: nil
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

    result =
      case parts do
        1 -> Map.fetch!(results, 0)
        _ -> Enum.map(0..(parts - 1), &Map.fetch!(results, &1)) |> Kiln.Native.concat() |> Args.unwrap!()
      end

    {result, %{parts: st.done_by, failures: Map.new(st.failures, fn {node, {_kind, msg}} -> {node, msg} end)}}
  end

  defp loop(%{fault: {i, exception}} = st) do
    # Once every part before the faulting one has its result, the fault is the input's first.
    if Enum.all?(0..(i - 1)//1, &is_map_key(st.results, &1)) do
      end_workers(st)
      raise exception
    else
      loop_receive(st)
    end
  end

  defp loop(st), do: loop_receive(st)

  # Waits for the next message, unless no node is left to send one.
  defp loop_receive(st) do
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

      {:data_fault, worker, i, exception} ->
        st = %{st | holding: Map.delete(st.holding, worker)}

        case st.fault do
          {j, _} when j < i ->
            loop(st)

          _ ->
            # Later parts no longer matter; earlier ones may still hold an earlier fault.
            {b, _} = elem(st.bounds, i)
            loop(%{st | fault: {i, shift_index(exception, b)}, queue: Enum.filter(st.queue, &(&1 < i))})
        end

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

  # The exception with its element's index counted from the start of the whole input.
  defp shift_index(exception, offset) do
    message =
      Regex.replace(~r/^element (\d+) /, exception.message, fn _, n ->
        "element #{String.to_integer(n) + offset} "
      end)

    %{exception | message: message}
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
      {:data_fault, ^pid, _, _} -> flush(pid)
    after
      0 -> :ok
    end
  end

  defp work(caller, caller_ref, node, job, opts, timeout) do
    # The part's process on its node is linked to this worker: if the worker is killed, so is it
    # (and with it the engine run it waits for). Its own end arrives here as a message.
    Process.flag(:trap_exit, true)
    send(caller, {:ready, self()})

    receive do
      {:part, i, part} ->
        case call(node, job, part, opts, timeout, caller_ref) do
          {:ok, result} ->
            send(caller, {:result, self(), i, result})
            work(caller, caller_ref, node, job, opts, timeout)

          {:error, {:data, exception}} ->
            # The data's fault, not the node's: it goes on taking parts.
            send(caller, {:data_fault, self(), i, exception})
            work(caller, caller_ref, node, job, opts, timeout)

          {:error, reason} ->
            send(caller, {:failed, self(), reason})
        end

      :wait ->
        receive do
          :wake -> work(caller, caller_ref, node, job, opts, timeout)
          {:DOWN, ^caller_ref, _, _, _} -> :ok
        end

      {:DOWN, ^caller_ref, _, _, _} ->
        :ok
    end
  end

  # One part on `node`, in a process of its own there, linked and monitored: a worker whose caller
  # died kills it (and its engine run stops), and a part beyond `timeout` is killed too.
  defp call(node, {module, name, args}, part, opts, timeout, caller_ref) do
    worker = self()

    {pid, ref} =
      :erlang.spawn_opt(node, __MODULE__, :__part__, [worker, module, name, [part | args] ++ [opts]], [
        :link,
        :monitor
      ])

    receive do
      {:part_reply, ^pid, reply} ->
        Process.demonitor(ref, [:flush])
        Process.unlink(pid)
        flush_exit(pid)

        case reply do
          {:ok, result} -> {:ok, result}
          failure -> {:error, classify(failure)}
        end

      {:DOWN, ^ref, :process, ^pid, reason} ->
        flush_exit(pid)
        {:error, classify_down(reason)}

      {:DOWN, ^caller_ref, _, _, _} ->
        Process.exit(pid, :kill)
        exit(:normal)
    after
      timeout ->
        Process.exit(pid, :kill)
        Process.demonitor(ref, [:flush])
        flush_exit(pid)
        {:error, {:node, "timed out"}}
    end
  end

  defp flush_exit(pid) do
    receive do
      {:EXIT, ^pid, _} -> :ok
    after
      0 -> :ok
    end
  end

  @doc false
  # A part's process on its node: runs the part and sends the reply (what :erpc would raise, as a
  # value) to the worker, then ends normally.
  def __part__(worker, module, name, args) do
    reply =
      try do
        {:ok, apply(module, name, args)}
      catch
        # The raw reason, as :erpc reports an error (an exception struct when Elixir raised one).
        :error, reason -> {:exception, reason, __STACKTRACE__}
        :exit, reason -> {:exception, {:exit, reason}, []}
        :throw, value -> {:exception, {:nocatch, value}, []}
      end

    send(worker, {:part_reply, self(), reply})
  end

  # How a part's process ended without a reply: its node went away, or Kiln is not there.
  defp classify_down(:noconnection), do: {:node, "not connected (down, or never reached)"}
  defp classify_down(:noproc), do: {:node, "not connected (down, or never reached)"}

  defp classify_down({:undef, [{__MODULE__, :__part__, _, _} | _]}), do: {:node, "Kiln is not loaded there"}
  defp classify_down({:undef, _} = reason), do: classify({:exception, :undef, elem(reason, 1)})
  defp classify_down(reason), do: {:node, "exited: #{inspect(reason, limit: 8)}"}

  # :erpc raises what went wrong there as {:exception, reason, stacktrace}, and its own failures
  # as {:erpc, why}.
  # A kernel's fault names an element ("element N (x), iteration K: ..."): the data's, not the node's.
  defp classify({:exception, %ArithmeticError{} = e, _}), do: {:data, e}
  defp classify({:exception, %ArgumentError{message: "element " <> _} = e, _}), do: {:data, e}
  defp classify({:exception, %ArgumentError{} = e, _}), do: {:argument, Exception.message(e)}
  defp classify({:exception, %Kiln.Error{} = e, _}), do: {:engine, Exception.message(e)}

  defp classify({:exception, :undef, [{Kiln.LogisticMap, :run, _, _} | _]}),
    do: {:node, "Kiln is not loaded there"}

  defp classify({:exception, :undef, [{module, name, args, _} | _]}) when is_list(args),
    do: {:node, "#{inspect(module)}.#{name}/#{length(args)} is not loaded there"}

  defp classify({:exception, e, _}) when is_exception(e), do: {:node, Exception.message(e)}
  defp classify({:erpc, :noconnection}), do: {:node, "not connected (down, or never reached)"}
  defp classify({:erpc, :timeout}), do: {:node, "timed out"}
  defp classify(other), do: {:node, inspect(other, limit: 8)}
end
