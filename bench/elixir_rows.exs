# Elixir benchmark rows (pure Elixir, NIF on CPU/OpenCL/CUDA, empty NIF call); run by bench/driver.py via `mix run` in elixir/.
#
# Usage (inside elixir/): mix run ../bench/elixir_rows.exs --n N [--p P] [--mu MU] [--iterations K]
#   [--repeat R] [--budget S] [--stages 1,2,4] [--rows REGEX] [--window 65536]
#   [--sections main,lists,kept] [--kernels] [--sweep 10,100,1000] [--lists-heap 16777216]
#   [--scale-n 10,16,20] [--scale-k 1,10] [--scale-budget S] [--deadline UNIX_S]
#   [--crossover-n 1,4,16] [--crossover-reps R] [--crossover-budget S]
#
# Rows come in sections (see sections/3), run in the order --sections names them:
#   main       the seed's rows and their relatives (the default table)
#   lists      lists both ways: :lists.reverse/1, the empty call and the map from a list to a list,
#              each in a fresh process, with a small heap and with a large one (--lists-heap)
#   kept       six calls in a row on one binary, every result kept alive, or only the last
#   kernels    (also --kernels) the kernel-path rows: the built-in map against the seed's map
#              written as a kernel (two forms), at each iteration count of --sweep, end to end from
#              a binary and on resident buffers, and a kernel of three inputs and two outputs
#   scale      the scaling sweep: n = 2^e for e in --scale-n, k in --scale-k, in four modes
#              (auto, device_only, host_share, cpu); rows that would start after the Unix
#              time --deadline come back skipped
#   crossover  small calls: Kiln (auto, cpu) against pure Elixir at each n of --crossover-n
#
# Each finished row is printed on stdout as one line "@@KILNBENCH@@ <json>" (the driver parses
# those and forwards every other line, e.g. compiler output, to stderr). The first such line is
# {"event": "versions", ...}. Timing is wall time (monotonic clock) around the call, from data
# already in hand (a list or a binary built before timing) to the result in hand; checksums are
# computed outside the timed region.

defmodule KilnBench.JSON do
  @moduledoc false
  # Elixir 1.14 ships no JSON encoder and the project has no Jason; this covers what we emit.
  def encode(nil), do: "null"
  def encode(true), do: "true"
  def encode(false), do: "false"
  def encode(x) when is_integer(x), do: Integer.to_string(x)
  def encode(x) when is_float(x), do: Float.to_string(x)
  def encode(x) when is_atom(x), do: encode(Atom.to_string(x))

  def encode(x) when is_binary(x) do
    s = if String.valid?(x), do: x, else: inspect(x)
    "\"" <> escape(s) <> "\""
  end

  def encode(x) when is_list(x), do: "[" <> Enum.map_join(x, ",", &encode/1) <> "]"

  def encode(%{} = m) do
    "{" <> Enum.map_join(m, ",", fn {k, v} -> encode(to_string(k)) <> ":" <> encode(v) end) <> "}"
  end

  def encode(x), do: encode(inspect(x))

  defp escape(s) do
    for <<c::utf8 <- s>>, into: "" do
      case c do
        ?" -> "\\\""
        ?\\ -> "\\\\"
        ?\n -> "\\n"
        ?\r -> "\\r"
        ?\t -> "\\t"
        c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
        c -> <<c::utf8>>
      end
    end
  end
end

defmodule KilnBench.Kernels do
  @moduledoc false
  import Kiln.Kernel

  # The seed's map written in Elixir, for the kernel row (and, with iterations:, the sweep's
  # expression form).
  defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)

  # The same map with its iteration count as a kernel argument (the sweep's Enum.reduce form).
  defkernel reduce(x, p, mu, k), do: Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end)

  # Three inputs, two outputs: a kernel bound by memory traffic (5 arrays of int64 per element),
  # for the bandwidth row.
  defkernel fma2(a, b, c), do: {a + b * c, a - c}
end

defmodule KilnBench do
  @moduledoc false
  @marker "@@KILNBENCH@@ "

  def main(argv) do
    {opts, _, _} =
      OptionParser.parse(argv,
        strict: [
          n: :integer, p: :integer, mu: :integer, iterations: :integer, repeat: :integer,
          budget: :float, stages: :string, rows: :string, window: :integer, kernels: :boolean,
          sweep: :string, sections: :string, lists_heap: :integer, scale_n: :string, scale_k: :string,
          scale_budget: :float, deadline: :float, crossover_n: :string, crossover_reps: :integer,
          crossover_budget: :float
        ]
      )

    ints = fn key, default ->
      opts |> Keyword.get(key, default) |> String.split(",", trim: true) |> Enum.map(&String.to_integer(String.trim(&1)))
    end

    kernels = Keyword.get(opts, :kernels, false)

    sections =
      opts |> Keyword.get(:sections, "main,lists,kept") |> String.split(",", trim: true)
      |> Enum.map(&String.to_atom(String.trim(&1)))

    sections = if kernels and :kernels not in sections, do: sections ++ [:kernels], else: sections

    cfg = %{
      n: Keyword.fetch!(opts, :n),
      p: Keyword.get(opts, :p, 6_700_417),
      mu: Keyword.get(opts, :mu, 22),
      iterations: Keyword.get(opts, :iterations, 10),
      repeat: Keyword.get(opts, :repeat, 3),
      budget: Keyword.get(opts, :budget, 60.0),
      window: Keyword.get(opts, :window, 65_536),
      stages:
        opts |> Keyword.get(:stages, "1,2,4,8,16,32,64,128") |> String.split(",", trim: true)
        |> Enum.map(&String.to_integer(String.trim(&1))),
      rows: Regex.compile!(Keyword.get(opts, :rows, "")),
      kernels: kernels,
      sweep: ints.(:sweep, "10,100,1000"),
      sections: sections,
      lists_heap: Keyword.get(opts, :lists_heap, 16_777_216),
      scale_n: ints.(:scale_n, "10,16,20"),
      scale_k: ints.(:scale_k, "1,10"),
      scale_budget: Keyword.get(opts, :scale_budget, 4.0),
      # The sweep's rows start only before this moment (Unix ms); later ones are skipped.
      deadline: (if d = Keyword.get(opts, :deadline), do: trunc(d * 1000)),
      crossover_n: ints.(:crossover_n, "1,4,16,64,256,1024,4096,16384,65536"),
      crossover_reps: Keyword.get(opts, :crossover_reps, 1000),
      crossover_budget: Keyword.get(opts, :crossover_budget, 1.0)
    }

    {devices, devices_error} = probe_devices()

    emit(%{
      event: "versions",
      elixir: System.version(),
      otp: System.otp_release(),
      erts: to_string(:erlang.system_info(:version)),
      system_version: String.trim(to_string(:erlang.system_info(:system_version))),
      schedulers: :erlang.system_info(:schedulers_online),
      devices: Enum.map(devices, &device_json/1),
      devices_error: devices_error
    })

    # Inputs are built once, outside every timed region, and shared by the rows (the list only
    # where a section passes lists from this process; the sweep builds its own per n).
    list = if Enum.any?(cfg.sections, &(&1 in [:main, :kernels])), do: Enum.to_list(1..cfg.n), else: []
    bin = build_binary(cfg.n)
    input = %{list: list, binary: bin}

    for {name, stages, extra, spec} <- plan(cfg, devices, devices_error),
        Regex.match?(cfg.rows, name) do
      row = run_spec(name, stages, spec, input, cfg)
      emit(Map.merge(extra, row))
    end

    :ok
  end

  # ---- the rows ---------------------------------------------------------------------------------

  # A row is {name, stages, extra fields for its JSON, spec}; the spec says how it is measured
  # (see run_spec/5 and run_row/5). Rows of a new API go into a section of their own here, and
  # the section's name into the driver's --sections for the runs that should have it.
  defp sections(cfg, devices, devices_error) do
    %{
      main: fn -> main_rows(cfg, devices, devices_error) end,
      lists: fn -> lists_rows(cfg, devices, devices_error) end,
      kept: fn -> kept_rows(cfg, devices, devices_error) ++ async_rows(cfg, devices, devices_error) end,
      kernels: fn -> kernel_path_rows(cfg, devices, devices_error) end,
      scale: fn -> scale_rows(cfg, devices, devices_error) end,
      crossover: fn -> crossover_rows(cfg) end
    }
  end

  defp plan(cfg, devices, devices_error) do
    all = sections(cfg, devices, devices_error)

    Enum.flat_map(cfg.sections, fn s ->
      case Map.fetch(all, s) do
        {:ok, rows} -> rows.()
        :error -> raise ArgumentError, "unknown section #{inspect(s)} (known: #{inspect(Map.keys(all))})"
      end
    end)
  end

  defp main_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg
    m = Kiln.LogisticMap

    pure =
      for {variant, name} <- [loop: "elixir.pure.loop", inlined: "elixir.pure.inlined"], s <- cfg.stages do
        {name, s, %{},
         fn %{list: l} ->
           {Kiln.LogisticMap.Pure.run(l, p, mu, iterations: k, stages: s, variant: variant), %{}}
         end}
      end

    cpu =
      for s <- cfg.stages do
        {"elixir.nif.cpu.list", s, %{device: "cpu"},
         fn %{list: l} -> {split_run(l, cfg.n, s, &unwrap(m.run(&1, p, mu, backend: :cpu, iterations: k))), %{}} end}
      end ++
        for s <- cfg.stages do
          {"elixir.nif.cpu.windows", s, %{device: "cpu", window: cfg.window},
           fn %{list: l} ->
             {split_run(l, cfg.n, s, &unwrap(m.run_windows(&1, p, mu, window: cfg.window, backend: :cpu, iterations: k))), %{}}
           end}
        end ++
        [{"elixir.nif.cpu.binary", nil, %{device: "cpu"},
          fn %{binary: b} -> {unwrap(m.run(b, p, mu, backend: :cpu, iterations: k)), %{}} end},
         # The same map as a kernel written in Elixir (defkernel), interpreted on every core.
         {"elixir.kernel.cpu.binary", nil, %{device: "cpu"},
          fn %{binary: b} -> {unwrap(KilnBench.Kernels.logistic(b, p, mu, iterations: k, backend: :cpu)), %{}} end}] ++
        kernel_gpu_rows(cfg, devices, devices_error)

    accel = Enum.flat_map(accelerator_devices(devices, devices_error), &device_rows(&1, cfg))

    empty = [
      {"elixir.empty.list", nil, %{expected: "input"}, fn %{list: l} -> {unwrap(Kiln.empty_call(l)), %{}} end},
      {"elixir.empty.binary", nil, %{expected: "input"}, fn %{binary: b} -> {unwrap(Kiln.empty_call(b)), %{}} end}
    ]

    pure ++ cpu ++ accel ++ spread_rows(cfg, devices, devices_error) ++ empty
  end

  # ---- the kernel path (--kernels) --------------------------------------------------------------

  # Where the kernel-path rows run: CUDA device 0, every OpenCL GPU (OpenCL device 0 where there
  # is none, e.g. PoCL on the CPU), and the host's cores. A target the NIF cannot use is
  # {label, nil, reason}: its rows come back skipped with that reason.
  defp kernel_targets(_devices, err) when is_binary(err),
    do: [{"cuda0", nil, "Kiln.devices() failed: " <> err}, {"opencl0", nil, "Kiln.devices() failed: " <> err},
         {"cpu", [backend: :cpu], %{device: "cpu", backend: "cpu"}}]

  defp kernel_targets(devices, nil) do
    target = fn dev ->
      b = get(dev, :backend)
      i = get(dev, :index) || 0
      label = "#{b}#{i}"

      if get(dev, :available) == true,
        do: {label, [backend: b, device: i],
             %{device: str(get(dev, :name)), gpu: get(dev, :gpu), backend: to_string(b), device_index: i,
               platform: str(get(dev, :platform))}},
        else: {label, nil, "#{b} device #{i} unavailable: #{str(get(dev, :reason))}"}
    end

    cuda =
      case Enum.find(devices, &(get(&1, :backend) == :cuda and get(&1, :index) == 0)) do
        nil -> {"cuda0", nil, "no CUDA device 0 listed by Kiln.devices()"}
        dev -> target.(dev)
      end

    opencl = Enum.filter(devices, &(get(&1, :backend) == :opencl))

    opencl =
      case Enum.filter(opencl, &(get(&1, :gpu) == true)) do
        [] ->
          case Enum.find(opencl, &(get(&1, :index) == 0)) do
            nil -> [{"opencl0", nil, "no OpenCL device listed by Kiln.devices()"}]
            dev -> [target.(dev)]
          end

        gpus ->
          Enum.map(gpus, target)
      end

    [cuda | opencl] ++ [{"cpu", [backend: :cpu], %{device: "cpu", backend: "cpu"}}]
  end

  defp kernel_path_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu} = cfg
    kb = KilnBench.Kernels
    targets = kernel_targets(devices, devices_error)

    sweep =
      for k <- cfg.sweep, {label, opts, extra} <- targets,
          {variant, shape, run} <- sweep_specs(p, mu, k, opts) do
        sweep_row("elixir.sweep.k#{k}.#{variant}.#{label}.#{shape}", k, opts, extra, {shape, run})
      end

    # Three buffers in, two buffers out; the five arrays' bytes per call give the row's bytes/s.
    bw =
      for {label, opts, extra} <- targets do
        name = "elixir.bw.fma2.#{label}.resident"

        if opts == nil do
          {name, nil, %{}, fn _ -> throw({:skip, extra}) end}
        else
          {name, nil,
           Map.merge(extra, %{resident: true, expected: "fma2", bytes_per_call: 5 * 8 * cfg.n,
             timing: "kernel alone on three resident buffers (fma2: {a + b * c, a - c}), returning two new buffers"}),
           {:setup,
            fn %{binary: bin} -> for _ <- 1..3, do: unwrap(Kiln.Buffer.upload(bin, opts)) end,
            fn [a, b, c] ->
              {res, st} = kb.fma2_stats(a, b, c)
              {res, Map.take(st, [:kernel_s])}
            end,
            # Both outputs, one after the other: the checksum covers every result.
            fn {u, v} -> unwrap(Kiln.Buffer.download(u)) <> unwrap(Kiln.Buffer.download(v)) end}}
        end
      end

    sweep ++ bw
  end

  # The eight ways of running the map k times on one target: the built-in map and the two kernel
  # forms, from a binary end to end and on a resident buffer (the upload and the download untimed;
  # the kernels both into a new buffer and in place).
  defp sweep_specs(p, mu, k, opts) do
    kb = KilnBench.Kernels
    it = [iterations: k]

    [
      {"nif", "binary", fn b -> Kiln.LogisticMap.run(b, p, mu, it ++ (opts || [])) end},
      {"kernel", "binary", fn b -> kb.logistic(b, p, mu, it ++ (opts || [])) end},
      {"kernel_reduce", "binary", fn b -> kb.reduce(b, p, mu, k, opts || []) end},
      # Kiln.Buffer.run maps in place and returns the same buffer.
      {"nif", "resident", fn buf -> Kiln.Buffer.run(buf, p, mu, it) end},
      # A kernel over a buffer returns a new buffer on its device...
      {"kernel", "resident", fn buf -> kb.logistic(buf, p, mu, it) end},
      {"kernel_reduce", "resident", fn buf -> kb.reduce(buf, p, mu, k) end},
      # ...or, with into:, writes in place as Kiln.Buffer.run does.
      {"kernel_into", "resident", fn buf -> kb.logistic(buf, p, mu, it ++ [into: buf]) end},
      {"kernel_reduce_into", "resident", fn buf -> kb.reduce(buf, p, mu, k, into: buf) end}
    ]
  end

  defp sweep_row(name, _k, nil, reason, _spec), do: {name, nil, %{}, fn _ -> throw({:skip, reason}) end}

  defp sweep_row(name, k, _opts, extra, {"binary", run}) do
    {name, nil, Map.merge(extra, %{iterations: k}), fn %{binary: b} -> {unwrap(run.(b)), %{}} end}
  end

  defp sweep_row(name, k, opts, extra, {"resident", run}) do
    {name, nil, Map.merge(extra, %{iterations: k, resident: true}),
     {:setup, fn %{binary: bin} -> unwrap(Kiln.Buffer.upload(bin, opts)) end,
      fn buf -> {unwrap(run.(buf)), %{}} end, fn buf -> unwrap(Kiln.Buffer.download(buf)) end}}
  end

  # ---- lists both ways, kept results, the sweep, the crossover -------------------------------------

  # CUDA device 0 (skipped with its reason where there is none) and the host's cores.
  defp cuda_and_cpu(devices, devices_error),
    do: Enum.filter(kernel_targets(devices, devices_error), fn {label, _, _} -> label in ["cuda0", "cpu"] end)

  # Lists both ways at --n: what a list costs to walk and build in Elixir itself (:lists.reverse/1),
  # the NIF's empty call on it (decode, encode), and the map from a list to a list, each run in a
  # fresh process that builds its own input; then the same in a process that also holds a list of
  # --lists-heap elements, so that the collections the call triggers copy a large heap.
  defp lists_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg

    ops =
      [{"reverse", %{expected: "input", timing: ":lists.reverse/1 of the input list"}, &:lists.reverse/1},
       {"empty_call", %{expected: "input", timing: "Kiln.empty_call(list)"}, &unwrap(Kiln.empty_call(&1))}] ++
        for {label, opts, extra} <- cuda_and_cpu(devices, devices_error) do
          if opts == nil,
            do: {label, extra, nil},
            else: {label, Map.put(extra, :timing, "Kiln.LogisticMap.run(list, ...) on #{label}, a list back"),
                   &unwrap(Kiln.LogisticMap.run(&1, p, mu, [iterations: k] ++ opts))}
        end

    heaps = [{"", 0}] ++ if cfg.lists_heap > 0, do: [{"big_heap.", cfg.lists_heap}], else: []

    for {prefix, heap} <- heaps, {label, extra, op} <- ops do
      name = "elixir.lists.#{prefix}#{label}"

      if op == nil,
        do: {name, nil, %{}, fn _ -> throw({:skip, extra}) end},
        else: {name, nil, Map.merge(extra, %{lists_heap: heap, op: label}), {:fresh, heap, op}}
    end
  end

  # Six calls in a row on one binary at --n: each result kept alive in a list while the next call
  # runs (kept), or only the last (dropped), or every one kept with a pause of @paced_ms before
  # each call (paced: a caller doing other work between calls); every call's time is reported.
  @paced_ms 20

  defp kept_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg

    for {label, opts, extra} <- cuda_and_cpu(devices, devices_error),
        {how, keep, pause} <- [{"kept", true, 0}, {"dropped", false, 0}, {"paced", true, @paced_ms}] do
      name = "elixir.#{how}.#{label}.binary"

      if opts == nil,
        do: {name, nil, %{}, fn _ -> throw({:skip, extra}) end},
        else: {name, nil, Map.merge(extra, %{calls_kept: keep, pause_ms: pause}),
               {:sequence, 6, keep, pause, &unwrap(Kiln.LogisticMap.run(&1, p, mu, [iterations: k] ++ opts))}}
    end
  end

  # 16 jobs in flight: the binary at --n split into 16 parts (sub-binaries, no copy), each started
  # with Kiln.LogisticMap.async/4 and all awaited (async16), against the same 16 calls one after
  # another (sync16). The results are checked part by part, not joined (a join would copy them).
  defp async_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg

    for {label, opts, extra} <- cuda_and_cpu(devices, devices_error), mode <- ["async16", "sync16"] do
      name = "elixir.#{mode}.#{label}.binary"

      run =
        if mode == "async16",
          do: fn parts, o -> parts |> Enum.map(&Kiln.LogisticMap.async(&1, p, mu, o)) |> Kiln.await_many(:infinity) end,
          else: fn parts, o -> Enum.map(parts, &unwrap(Kiln.LogisticMap.run(&1, p, mu, o))) end

      if opts == nil,
        do: {name, nil, %{}, fn _ -> throw({:skip, extra}) end},
        else: {name, nil, Map.merge(extra, %{jobs: 16}),
               fn %{binary: b} -> {{:parts, run.(sixteen_parts(b), [iterations: k] ++ opts)}, %{}} end}
    end
  end

  defp sixteen_parts(b) do
    n = div(byte_size(b), 8)
    for i <- 0..15 do
      first = div(n * i, 16)
      binary_part(b, first * 8, (div(n * (i + 1), 16) - first) * 8)
    end
  end

  # The device of the sweep's GPU modes: CUDA device 0, else the first OpenCL GPU; {nil, reason}
  # where the NIF has none.
  defp best_gpu(_devices, err) when is_binary(err), do: {nil, "Kiln.devices() failed: " <> err}

  defp best_gpu(devices, nil) do
    usable = fn b -> Enum.filter(devices, &(get(&1, :backend) == b and get(&1, :available) == true and get(&1, :gpu) != false)) end

    case usable.(:cuda) ++ usable.(:opencl) do
      [dev | _] ->
        i = get(dev, :index) || 0
        {[backend: get(dev, :backend), device: i],
         %{device: str(get(dev, :name)), gpu: true, backend: to_string(get(dev, :backend)), device_index: i}}

      [] ->
        why = for d <- devices, get(d, :backend) in [:cuda, :opencl], get(d, :available) != true,
                  do: "#{get(d, :backend)}: #{str(get(d, :reason))}"
        {nil, "no usable GPU (" <> Enum.join(why, "; ") <> ")"}
    end
  end

  # The scaling sweep: at n = 2^e and k iterations, from a binary, Kiln's defaults (auto), the best
  # GPU computing every element (device_only), the same GPU with the host's cores sharing
  # (host_share), and the host's cores alone (cpu). run_stats says where auto ran.
  defp scale_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu} = cfg
    {gpu, gpu_extra} = best_gpu(devices, devices_error)

    modes = [
      {"auto", [], %{device: "auto"}},
      {"device_only", gpu && gpu ++ [host_share: false], gpu_extra},
      {"host_share", gpu && gpu ++ [host_share: true], gpu_extra},
      {"cpu", [backend: :cpu], %{device: "cpu", backend: "cpu"}}
    ]

    for e <- cfg.scale_n, k <- cfg.scale_k, {mode, opts, extra} <- modes do
      n = Bitwise.bsl(1, e)
      name = "elixir.scale.n#{e}.k#{k}.#{mode}.binary"
      fields = %{n: n, n_log2: e, iterations: k, mode: mode}

      if opts == nil do
        {name, nil, fields, fn _ -> throw({:skip, extra}) end}
      else
        {name, nil, Map.merge(extra, fields),
         {:scale, n,
          fn %{binary: b} ->
            {res, st} = unwrap(Kiln.LogisticMap.run_stats(b, p, mu, [iterations: k] ++ opts))
            {res, %{ran_on: to_string(st.backend), host_elements: st.host_elements}}
          end}}
      end
    end
  end

  # Small calls: Kiln's defaults and the cpu backend against pure Elixir, from a list (a list back)
  # and from a binary, at each n; each point is the median of many calls in a fresh process.
  defp crossover_rows(cfg) do
    %{p: p, mu: mu, iterations: k} = cfg

    impls = [
      {"auto", &Kiln.LogisticMap.run(&1, p, mu, iterations: k)},
      {"cpu", &Kiln.LogisticMap.run(&1, p, mu, iterations: k, backend: :cpu)},
      {"pure", &Kiln.LogisticMap.Pure.run(&1, p, mu, iterations: k)}
    ]

    for n <- cfg.crossover_n, {impl, run} <- impls, shape <- ["list", "binary"] do
      build = if shape == "list", do: fn -> Enum.to_list(1..n) end, else: fn -> build_binary(n) end

      {"elixir.crossover.n#{n}.#{impl}.#{shape}", nil, %{n: n, iterations: k, impl: impl, shape: shape},
       {:calls, build, fn data -> unwrap(run.(data)) end}}
    end
  end

  # The kernel written in Elixir, compiled for device 0 of each GPU backend: into OpenCL C (a GPU
  # where there is one, else PoCL) and into CUDA C with NVRTC; the warm-up run pays for the build.
  defp kernel_gpu_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg

    for backend <- [:opencl, :cuda] do
      name = "elixir.kernel.#{backend}0.binary"
      dev = if devices_error, do: nil, else: Enum.find(devices, &(get(&1, :backend) == backend and get(&1, :index) == 0))

      if dev && get(dev, :available) do
        {name, nil, %{device: str(get(dev, :name)), backend: "#{backend}", gpu: get(dev, :gpu)},
         fn %{binary: b} ->
           {unwrap(KilnBench.Kernels.logistic(b, p, mu, iterations: k, backend: backend, device: 0)), %{}}
         end}
      else
        {name, nil, %{}, fn _ -> throw({:skip, "no usable #{backend} device 0"}) end}
      end
    end
  end

  # One run over every CUDA device (where there are several), and Kiln.Cluster: on this node
  # alone (what the spreading itself costs) and on this node and a peer started here, each
  # node on its own GPU where there are two (parts cross the distribution channel both ways).
  defp spread_rows(cfg, devices, devices_error) do
    %{p: p, mu: mu, iterations: k} = cfg
    cuda = if devices_error, do: [], else: Enum.filter(devices, &(get(&1, :backend) == :cuda and get(&1, :available)))

    # The built-in map and the kernel written in Elixir, each over every GPU.
    all_cuda =
      for {name, run} <- [
            {"elixir.nif.cuda.all.binary", &Kiln.LogisticMap.run(&1, p, mu, backend: :cuda, device: :all, iterations: k)},
            {"elixir.kernel.cuda.all.binary", &KilnBench.Kernels.logistic(&1, p, mu, backend: :cuda, device: :all, iterations: k)}
          ] do
        if length(cuda) > 1 do
          {name, nil, %{device: Enum.map_join(cuda, " + ", &str(get(&1, :name))), backend: "cuda"},
           fn %{binary: b} -> {unwrap(run.(b)), %{}} end}
        else
          {name, nil, %{}, fn _ -> throw({:skip, "fewer than two usable CUDA devices"}) end}
        end
      end

    # The peer's device: a second CUDA GPU where there is one, else the same auto choice as here.
    {here_opts, peer_opts} = if length(cuda) > 1, do: {[backend: :cuda, device: 0], [backend: :cuda, device: 1]}, else: {[], []}

    all_cuda ++
    [
      {"elixir.cluster.this_node.binary", nil, %{device: "this node (auto)"},
       fn %{binary: b} -> {unwrap(Kiln.Cluster.run(b, p, mu, nodes: [node()], iterations: k)), %{}} end},
      {"elixir.cluster.two_nodes.binary", nil, %{device: "this node and a peer on this machine"},
       {:setup,
        fn %{binary: b} ->
          case peer() do
            {:ok, peer} -> {b, [{node(), here_opts}, {peer, peer_opts}]}
            {:error, reason} -> throw({:skip, reason})
          end
        end,
        fn {b, nodes} -> {unwrap(Kiln.Cluster.run(b, p, mu, nodes: nodes, iterations: k)), %{}} end, & &1}}
    ]
  end

  # A peer node with Kiln loaded, started once (this VM becomes a distributed node for it).
  defp peer do
    case :persistent_term.get({__MODULE__, :peer}, nil) do
      nil ->
        result = start_peer()
        :persistent_term.put({__MODULE__, :peer}, result)
        result

      result ->
        result
    end
  end

  defp start_peer do
    with epmd when is_binary(epmd) <- System.find_executable("epmd") || {:error, "no epmd on PATH"},
         _ <- System.cmd(epmd, ["-daemon"]),
         {:ok, _} <- (if Node.alive?(), do: {:ok, node()}, else: Node.start(:"kiln_bench@127.0.0.1", :longnames)),
         paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1]),
         {:ok, _pid, peer} <-
           :peer.start(%{name: :peer.random_name(), host: ~c"127.0.0.1", longnames: true,
             args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie()), ~c"-connect_all", ~c"false" | paths]}),
         {:ok, _} <- :erpc.call(peer, Application, :ensure_all_started, [:kiln]) do
      {:ok, peer}
    else
      {:error, reason} when is_binary(reason) -> {:error, reason}
      other -> {:error, "could not start a peer node: #{inspect(other, limit: 8)}"}
    end
  end

  # OpenCL devices (GPUs first, then e.g. PoCL on the CPU) and CUDA devices, as the NIF sees them.
  defp accelerator_devices(_devices, err) when is_binary(err), do: [{:error, err}]

  defp accelerator_devices(devices, nil) do
    found = Enum.filter(devices, &(get(&1, :backend) in [:opencl, :cuda]))
    # A backend the NIF lists as unavailable still gets rows, marked skipped with its reason.
    missing =
      for b <- [:opencl, :cuda], not Enum.any?(found, &(get(&1, :backend) == b)),
          do: %{backend: b, index: 0, name: nil, available: false, reason: "not listed by Kiln.devices()", gpu: nil}

    found ++ missing
  end

  defp device_rows({:error, err}, _cfg) do
    for v <- ["list", "binary", "resident"],
        do: {"elixir.nif.accelerators.#{v}", nil, %{}, fn _ -> throw({:error_row, "Kiln.devices() failed: " <> err}) end}
  end

  defp device_rows(dev, cfg) do
    %{p: p, mu: mu, iterations: k} = cfg
    b = get(dev, :backend)
    i = get(dev, :index) || 0
    base = "elixir.nif.#{b}#{i}"
    extra = %{device: str(get(dev, :name)), gpu: get(dev, :gpu), backend: to_string(b), device_index: i}
    opts = [backend: b, device: i, iterations: k]

    if get(dev, :available) != true do
      reason = "#{b} device #{i} unavailable: #{str(get(dev, :reason))}"
      for v <- ["list", "binary", "resident"], do: {"#{base}.#{v}", nil, extra, fn _ -> throw({:skip, reason}) end}
    else
      # The timed runs go without device timing events (they cost about 15% on the H100); the
      # warm-up run takes them, and its split is the row's.
      stats_run = fn data, phases ->
        {res, st} = unwrap(Kiln.LogisticMap.run_stats(data, p, mu, [phase_times: phases] ++ opts))
        {res, Map.take(st, [:host_to_device_s, :kernel_s, :device_to_host_s])}
      end

      [
        {"#{base}.list", nil, extra,
         {:phases, fn %{list: l} -> stats_run.(l, false) end, fn %{list: l} -> stats_run.(l, true) end}},
        {"#{base}.binary", nil, extra,
         {:phases, fn %{binary: bin} -> stats_run.(bin, false) end, fn %{binary: bin} -> stats_run.(bin, true) end}},
        # Resident: a fresh upload before each run (untimed) so every run maps the same input and the
        # last one can be checked; only Kiln.Buffer.run(_stats) is timed, then one untimed download.
        {"#{base}.resident", nil, Map.put(extra, :resident, true),
         {:setup, fn %{binary: bin} -> unwrap(Kiln.Buffer.upload(bin, backend: b, device: i)) end,
          fn buf ->
            {_, st} = unwrap(Kiln.Buffer.run_stats(buf, p, mu, iterations: k))
            {buf, Map.take(st, [:kernel_s])}
          end, fn buf -> unwrap(Kiln.Buffer.download(buf)) end}}
      ]
    end
  end

  # Splits the list into `stages` parts mapped concurrently by Tasks (the seed's Flow stages);
  # splitting, copying into the tasks and concatenating are part of the timed cost.
  defp split_run(list, _n, 1, fun), do: fun.(list)

  defp split_run(list, n, stages, fun) do
    list
    |> Enum.chunk_every(max(1, div(n + stages - 1, stages)))
    |> Enum.map(fn part -> Task.async(fn -> fun.(part) end) end)
    |> Enum.flat_map(&Task.await(&1, :infinity))
  end

  # ---- measuring --------------------------------------------------------------------------------

  # The specs beyond run_row's: {:scale, n, fun} (a sweep row over 1..n, its binary built once per
  # n, with the sweep's budget and time limit), {:fresh, heap, op} (each run in a fresh process
  # that builds its list), {:sequence, calls, keep, pause_ms, fun} (several calls on one binary,
  # results kept or not, a pause before each or none) and {:calls, build, fun} (the median of many small calls).
  defp run_spec(name, stages, {:scale, n, fun}, _input, cfg) do
    if cfg.deadline && System.os_time(:millisecond) > cfg.deadline do
      %{name: name, stages: stages, status: "skipped",
        reason: "the sweep's time limit (--sweep-time-limit) ran out before this row"}
    else
      run_row(name, stages, fun, scale_input(n), %{cfg | budget: min(cfg.budget, cfg.scale_budget)})
    end
  end

  defp run_spec(name, stages, {:fresh, heap, op}, _input, cfg),
    do: guarded(name, stages, fn -> fresh_row(name, stages, heap, op, cfg) end)

  defp run_spec(name, stages, {:sequence, calls, keep, pause, fun}, input, _cfg),
    do: guarded(name, stages, fn -> sequence_row(name, stages, calls, keep, pause, fun, input.binary) end)

  defp run_spec(name, stages, {:calls, build, fun}, _input, cfg),
    do: guarded(name, stages, fn -> calls_row(name, stages, build, fun, cfg) end)

  defp run_spec(name, stages, spec, input, cfg), do: run_row(name, stages, spec, input, cfg)

  # The sweep's input 1..n as a binary, built once for the rows of one n (the previous n's is let go).
  defp scale_input(n) do
    case Process.get(:kiln_bench_scale_input) do
      {^n, bin} ->
        %{binary: bin}

      _ ->
        Process.delete(:kiln_bench_scale_input)
        :erlang.garbage_collect()
        bin = build_binary(n)
        Process.put(:kiln_bench_scale_input, {n, bin})
        %{binary: bin}
    end
  end

  # A row's outcome as a map, whatever it raised or threw: a skipped row, an error with its reason.
  defp guarded(name, stages, fun) do
    try do
      fun.()
    rescue
      e -> %{name: name, stages: stages, status: "error", reason: Exception.format(:error, e, __STACKTRACE__) |> trim_reason()}
    catch
      :throw, {:skip, reason} -> %{name: name, stages: stages, status: "skipped", reason: reason}
      :throw, {:error_row, reason} -> %{name: name, stages: stages, status: "error", reason: reason}
      kind, reason -> %{name: name, stages: stages, status: "error", reason: trim_reason(Exception.format(kind, reason, __STACKTRACE__))}
    end
  end

  # Runs fun in a process of its own (spawned here, so it starts with a small heap) and returns
  # its value; what it raises or throws is raised here again.
  defp in_fresh_process(fun) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        reply =
          try do
            {:ok, fun.()}
          catch
            kind, reason -> {:raised, kind, reason, __STACKTRACE__}
          end

        send(parent, {self(), reply})
      end)

    receive do
      {^pid, reply} ->
        Process.demonitor(ref, [:flush])

        case reply do
          {:ok, value} -> value
          {:raised, kind, reason, stack} -> :erlang.raise(kind, reason, stack)
        end

      {:DOWN, ^ref, :process, _, reason} ->
        raise "the row's process exited: #{inspect(reason, limit: 5)}"
    end
  end

  defp ok_row(name, stages, runs, result, more) do
    Map.merge(
      %{name: name, stages: stages, status: "ok", repeat: length(runs), runs: runs, seconds: median(runs),
        seconds_min: Enum.min(runs), seconds_max: Enum.max(runs), host_to_device_s: 0.0, kernel_s: 0.0,
        device_to_host_s: 0.0, checksum: checksum(result), result_length: result_length(result)},
      more)
  end

  # Lists rows: every run (one warm-up where the heap is small, then --repeat timed ones) in a
  # fresh process that builds the list it holds (heap > 0: a list of that many elements, alive
  # until after the call) and the input list, collects once, then times op on the input; the
  # collections the call itself triggers are in its time.
  defp fresh_row(name, stages, heap, op, cfg) do
    n = cfg.n

    once = fn keep ->
      in_fresh_process(fn ->
        # A list of `heap` small integers (16 bytes an element on the heap), built by a BIF: several
        # times faster than :lists.seq/2 at 2^24.
        held = if heap > 0, do: :binary.bin_to_list(:binary.copy(<<7>>, heap)), else: [0]
        data = :lists.seq(1, n)
        :erlang.garbage_collect()
        t0 = System.monotonic_time(:nanosecond)
        res = op.(data)
        t = (System.monotonic_time(:nanosecond) - t0) / 1.0e9
        # hd(held) keeps the held list alive across the call.
        {t, if(keep, do: res), hd(held)}
      end)
    end

    warm_s = if heap == 0, do: elem(once.(false), 0), else: nil
    eff = if warm_s, do: effective_repeat(warm_s, cfg.repeat, cfg.budget), else: cfg.repeat
    timed = for i <- 1..eff, do: once.(i == eff)
    runs = Enum.map(timed, &elem(&1, 0))
    ok_row(name, stages, runs, elem(List.last(timed), 1), %{warmup_s: warm_s})
  end

  # Kept / dropped / paced rows: in one process holding only the binary, one untimed warm-up call,
  # then `calls` timed calls, each after a garbage collection (and `pause` ms of sleep, untimed):
  # with keep, every result is still referenced (a list of them) when the next call starts;
  # without, only the last one is. The kept results must all be the same bytes; the last one is
  # checked.
  defp sequence_row(name, stages, calls, keep, pause, fun, bin) do
    settle_host_pool(bin)

    {runs, results} =
      in_fresh_process(fn ->
        _ = fun.(bin)

        {runs, results} =
          Enum.reduce(1..calls, {[], []}, fn _, {runs, kept} ->
            :erlang.garbage_collect()
            if pause > 0, do: Process.sleep(pause)
            t0 = System.monotonic_time(:nanosecond)
            res = fun.(bin)
            t = (System.monotonic_time(:nanosecond) - t0) / 1.0e9
            {[t | runs], if(keep, do: [res | kept], else: [res])}
          end)

        {Enum.reverse(runs), results}
      end)

    [last | _] = results

    if Enum.any?(results, &(&1 != last)),
      do: throw({:error_row, "the #{length(results)} kept results differ from each other"})

    ok_row(name, stages, runs, last, %{calls: calls, kept_alive: length(results), call_s: runs})
  end

  # Each sequence row starts from a host pool without blocks of its size class, so that one row's
  # calls never take what an earlier row left: that row's results, garbage in this process, go
  # back to the pool at a collection here, and the pool releases a block unused for its idle time
  # (KILN_HOST_POOL_IDLE_MS, 2000 ms by default). Blocks below 2 MiB are not pooled: no wait.
  defp settle_host_pool(bin) do
    :erlang.garbage_collect()

    if byte_size(bin) >= 2 * 1024 * 1024 do
      idle =
        case Integer.parse(System.get_env("KILN_HOST_POOL_IDLE_MS") || "") do
          {ms, ""} when ms >= 0 -> ms
          _ -> 2000
        end

      Process.sleep(idle + 500)
    end
  end

  # Crossover rows: in a fresh process that builds its input, three untimed calls estimate a call's
  # time; then up to --crossover-reps timed calls (at least 10, fewer where --crossover-budget
  # seconds run out), each timed alone; the row is their median, with quartiles.
  defp calls_row(name, stages, build, fun, cfg) do
    {times, last} =
      in_fresh_process(fn ->
        data = build.()
        warm = for _ <- 1..3, do: elem(time_call(fun, data), 0)
        est = max(median(warm), 1.0e-7)
        reps = cfg.crossover_reps
        eff = reps |> min(max(min(reps, 10), trunc(cfg.crossover_budget / est))) |> max(1)
        times = for _ <- 1..(eff - 1), eff > 1, do: elem(time_call(fun, data), 0)
        {t, last} = time_call(fun, data)
        {[t | times], last}
      end)

    s = Enum.sort(times)
    q = fn f -> Enum.at(s, min(length(s) - 1, trunc(f * length(s)))) end
    more = %{seconds_p25: q.(0.25), seconds_p75: q.(0.75), us_per_call: median(times) * 1.0e6}

    more =
      if length(times) < cfg.crossover_reps,
        do: Map.put(more, :calls_note, "#{length(times)} calls of #{cfg.crossover_reps}: the point's #{cfg.crossover_budget} s ran out"),
        else: more

    # Thousands of call times would swell the JSON: the quartiles stand for them.
    ok_row(name, stages, s, last, more) |> Map.put(:runs, if(length(s) <= 50, do: times, else: nil))
  end

  defp time_call(fun, data) do
    t0 = System.monotonic_time(:nanosecond)
    res = fun.(data)
    {(System.monotonic_time(:nanosecond) - t0) / 1.0e9, res}
  end

  defp run_row(name, stages, spec, input, cfg) do
    # Binary rows run each timed call in a process of their own that holds only the binary: in this
    # process the 2^25-element input list makes every garbage collection cost hundreds of
    # milliseconds, and a large result binary can trigger one inside the timed region.
    isolated = String.ends_with?(name, [".binary", ".resident"])
    input = if isolated, do: Map.take(input, [:binary]), else: input

    # {:phases, timed, warm}: the warm-up runs `warm`, which measures the phase split; the
    # timed runs run `timed`, which does not (see device_rows).
    {setup, fun, warm_fun, finish} =
      case spec do
        {:setup, s, f, fin} -> {fn -> s.(input) end, f, f, fin}
        {:phases, f, w} -> {fn -> input end, f, w, & &1}
        f -> {fn -> input end, f, f, & &1}
      end

    guarded(name, stages, fn ->
      {warm_s, {_, warm_parts}} = timed_once(setup, warm_fun, isolated, false)
      eff = effective_repeat(warm_s, cfg.repeat, cfg.budget)
      {runs, parts, last} = timed_runs(setup, fun, isolated, eff, [], [])
      parts = if match?({:phases, _, _}, spec), do: [warm_parts], else: parts
      result = finish.(last)
      checksum = checksum(result)

      row = %{
        name: name, stages: stages, status: "ok", repeat: length(runs), runs: runs,
        seconds: median(runs), seconds_min: Enum.min(runs), seconds_max: Enum.max(runs), warmup_s: warm_s,
        host_to_device_s: median_part(parts, :host_to_device_s),
        kernel_s: median_part(parts, :kernel_s),
        device_to_host_s: median_part(parts, :device_to_host_s),
        checksum: checksum, result_length: result_length(result)
      }

      # Where the engine ran and how much the host computed, from the last run (the sweep's rows).
      row = Map.merge(row, Map.take(List.first(parts) || %{}, [:ran_on, :host_elements]))

      if eff < cfg.repeat,
        do: Map.put(row, :repeat_note, "#{eff} timed run(s) instead of #{cfg.repeat}: the warm-up took #{Float.round(warm_s, 1)} s"),
        else: row
    end)
  end

  # Rows slower than the budget allows get fewer timed runs (at least one); the row says so.
  defp effective_repeat(warm_s, repeat, budget) do
    if warm_s * repeat <= budget, do: repeat, else: max(1, min(repeat, trunc(budget / max(warm_s, 1.0e-9))))
  end

  # Only the run whose result is checked sends it back: any other result dies with its process, so
  # its memory is free again before the next run allocates.
  defp timed_once(setup, fun, isolated, keep \\ true)

  defp timed_once(setup, fun, true = _isolated, keep) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        reply =
          try do
            {t, {res, parts}} = timed_once(setup, fun, false)
            {:ok, {t, {if(keep, do: res), parts}}}
          catch
            kind, reason -> {:raised, kind, reason, __STACKTRACE__}
          end

        send(parent, {self(), reply})
      end)

    # A throw or raise in the row's process (a skipped row, say) is re-raised here, as if inline.
    receive do
      {^pid, reply} ->
        Process.demonitor(ref, [:flush])

        case reply do
          {:ok, result} -> result
          {:raised, kind, reason, stack} -> :erlang.raise(kind, reason, stack)
        end

      {:DOWN, ^ref, :process, _, reason} ->
        raise "the row's process exited: #{inspect(reason, limit: 5)}"
    end
  end

  defp timed_once(setup, fun, false, _keep) do
    arg = setup.()
    :erlang.garbage_collect()
    t0 = System.monotonic_time(:nanosecond)
    {res, parts} = fun.(arg)
    {(System.monotonic_time(:nanosecond) - t0) / 1.0e9, {res, parts}}
  end

  # Only the last run's result is kept (for the checksum), so earlier results are garbage before
  # the next timed run starts.
  defp timed_runs(setup, fun, isolated, 1, runs, parts) do
    {t, {res, p}} = timed_once(setup, fun, isolated)
    {Enum.reverse([t | runs]), [p | parts], res}
  end

  defp timed_runs(setup, fun, isolated, k, runs, parts) do
    {t, {_res, p}} = timed_once(setup, fun, isolated, false)
    timed_runs(setup, fun, isolated, k - 1, [t | runs], [p | parts])
  end

  defp median(xs) do
    s = Enum.sort(xs)
    c = length(s)
    if rem(c, 2) == 1, do: Enum.at(s, div(c, 2)), else: (Enum.at(s, div(c, 2) - 1) + Enum.at(s, div(c, 2))) / 2
  end

  defp median_part(parts, key) do
    vals = for p <- parts, is_map(p), is_number(Map.get(p, key)), do: Map.get(p, key) * 1.0
    if vals == [], do: 0.0, else: median(vals)
  end

  # Exact (bigint) sum of the results, whatever shape they came back in.
  defp checksum(l) when is_list(l), do: Enum.sum(l)
  # Results in parts (the async rows): summed part by part, never joined.
  defp checksum({:parts, parts}), do: parts |> Enum.map(&checksum/1) |> Enum.sum()
  # A large binary is summed in parts on every scheduler: one core takes seconds over 2^28 elements.
  @checksum_part 8 * 2_097_152
  defp checksum(b) when is_binary(b) and byte_size(b) > 2 * @checksum_part do
    for(off <- 0..(byte_size(b) - 1)//@checksum_part, do: binary_part(b, off, min(@checksum_part, byte_size(b) - off)))
    |> Task.async_stream(&checksum/1, max_concurrency: System.schedulers_online(), ordered: false, timeout: :infinity)
    |> Enum.reduce(0, fn {:ok, v}, acc -> acc + v end)
  end

  defp checksum(b) when is_binary(b), do: for(<<x::signed-native-64 <- b>>, reduce: 0, do: (acc -> acc + x))
  defp checksum(other), do: raise(ArgumentError, "unexpected result shape: #{inspect(other, limit: 5)}")

  defp result_length(l) when is_list(l), do: length(l)
  defp result_length({:parts, parts}), do: parts |> Enum.map(&result_length/1) |> Enum.sum()
  defp result_length(b) when is_binary(b), do: div(byte_size(b), 8)

  # ---- helpers ----------------------------------------------------------------------------------

  defp build_binary(n) do
    bin =
      try do
        unwrap(Kiln.Binary.iota(1, n))
      rescue
        UndefinedFunctionError -> for x <- 1..n, into: <<>>, do: <<x::signed-native-64>>
      end

    if byte_size(bin) != 8 * n, do: raise("Kiln.Binary.iota(1, #{n}) returned #{byte_size(bin)} bytes")
    bin
  end

  defp probe_devices do
    try do
      {unwrap(Kiln.devices()), nil}
    rescue
      e -> {[], Exception.message(e)}
    catch
      kind, reason -> {[], "#{kind}: #{inspect(reason)}"}
    end
  end

  defp device_json(d) do
    for k <- [:backend, :index, :name, :platform, :gpu, :available, :reason], into: %{}, do: {k, jsonable(get(d, k))}
  end

  defp jsonable(v) when is_list(v), do: str(v)
  defp jsonable(v), do: v

  defp get(m, k) when is_map(m), do: Map.get(m, k, Map.get(m, to_string(k)))
  defp get(kw, k) when is_list(kw), do: Keyword.get(kw, k)

  defp str(nil), do: nil
  defp str(s) when is_binary(s), do: s
  defp str(l) when is_list(l), do: (try do List.to_string(l) rescue _ -> inspect(l) end)
  defp str(x), do: inspect(x)

  defp unwrap({:ok, v}), do: v
  defp unwrap({:error, r}), do: raise("Kiln returned an error: #{str(r)}")
  defp unwrap(:ok), do: :ok
  defp unwrap(v), do: v

  # Error reasons go into a table cell: the first lines, at most 600 characters.
  defp trim_reason(s), do: s |> String.split("\n") |> Enum.take(6) |> Enum.join(" | ") |> String.slice(0, 600)

  defp emit(map), do: IO.puts(@marker <> KilnBench.JSON.encode(map))
end

KilnBench.main(System.argv())
