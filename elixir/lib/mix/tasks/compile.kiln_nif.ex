# Mix compiler that builds the Kiln NIF with CMake into the application's build folder, saying what it does as it goes.
defmodule Mix.Tasks.Compile.KilnNif do
  @moduledoc """
  Builds `kiln_nif.so` with CMake before the Elixir sources are compiled.

  Everything goes under the application's build folder (`Mix.Project.app_path/0`, e.g.
  `_build/dev/lib/kiln`): the CMake tree in `cmake/` and the NIF in `priv/kiln_nif.so`, where
  `Kiln.Native` loads it from and `mix release` copies it from. Nothing is written into Kiln's own
  source folder, so every application and every Mix env that uses one checkout of Kiln has its
  own build. The repository one level above the Mix project is configured once (or again when
  the arguments change) and only the `kiln_nif` target is built; CMake's dependency tracking
  makes an up-to-date build a no-op.

  It reports the configure step, which backends are built (and why one is left out), the compile
  as it goes and where the NIF went.

  Environment:

    * `KILN_CMAKE_ARGS` - extra configure arguments, split like a shell would, e.g.
      `KILN_CMAKE_ARGS="-DKILN_WITH_CUDA=OFF -DKILN_WITH_OPENCL=OFF"`.
    * `CXX` - the C++ compiler, as CMake reads it.
    * `CMAKE_BUILD_PARALLEL_LEVEL` - compile jobs (default: one per scheduler).

  Pass `--verbose` (`mix compile --verbose`) to see all of CMake's output and the compile commands.
  """
  use Mix.Task.Compiler

  @shortdoc "Builds the Kiln NIF with CMake"

  # Seconds without output after which the build says it is still at work.
  @quiet_s 30

  @impl true
  def run(args) do
    {opts, _, _} = OptionParser.parse(args, switches: [verbose: :boolean, force: :boolean])
    project_dir = Path.dirname(Mix.Project.project_file())
    source_dir = Path.expand("..", project_dir)
    app_path = Mix.Project.app_path()
    build_dir = Path.join(app_path, "cmake")
    priv_dir = Path.join(app_path, "priv")

    check_tools!(source_dir)
    own_priv!(priv_dir, project_dir)
    configure!(source_dir, build_dir, opts)
    build!(build_dir, opts)
    install(build_dir, priv_dir)
  end

  @impl true
  def clean do
    # The CMake tree stays: rebuilding the engine is slow, and `mix compile --force` reconfigures.
    File.rm(Path.join([Mix.Project.app_path(), "priv", "kiln_nif.so"]))
    :ok
  end

  @doc false
  def erl_include_dir do
    Path.join([to_string(:code.root_dir()), "erts-#{:erlang.system_info(:version)}", "include"])
  end

  defp check_tools!(source_dir) do
    unless File.exists?(Path.join(source_dir, "include/kiln/kiln.hpp")) do
      Mix.raise("Kiln's C++ sources were not found in #{source_dir} (expected include/kiln/kiln.hpp)")
    end

    unless System.find_executable("cmake") do
      Mix.raise("cmake was not found on PATH; it builds the Kiln NIF: apt-get install cmake")
    end

    cxx = System.get_env("CXX")

    unless (cxx && System.find_executable(cxx)) || System.find_executable("g++") ||
             System.find_executable("c++") do
      Mix.raise("no C++20 compiler was found (CXX, g++ or c++): apt-get install g++")
    end

    unless File.exists?(Path.join(erl_include_dir(), "erl_nif.h")) do
      Mix.raise(
        "erl_nif.h was not found in #{erl_include_dir()}; the NIF needs the Erlang headers: " <>
          "apt-get install erlang-dev"
      )
    end
  end

  # Mix links the app's priv/ to the source's priv/ when the source has one (only a checkout built
  # by an older Kiln does); writing the NIF through that link would put it back in the source.
  defp own_priv!(priv_dir, project_dir) do
    case File.read_link(priv_dir) do
      {:ok, _} -> File.rm!(priv_dir)
      {:error, _} -> :ok
    end

    File.mkdir_p!(priv_dir)
    stale = Path.join([project_dir, "priv", "kiln_nif.so"])

    if File.exists?(stale) do
      Mix.shell().info(
        "==> kiln: #{stale} is left from an older build and is no longer used " <>
          "(the NIF now lives in each application's _build); it can be removed"
      )
    end
  end

  defp configure!(source_dir, build_dir, opts) do
    extra = OptionParser.split(System.get_env("KILN_CMAKE_ARGS", ""))

    args =
      [
        "-S",
        source_dir,
        "-B",
        build_dir,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DKILN_BUILD_NIF=ON",
        "-DKILN_BUILD_TESTS=OFF",
        "-DKILN_BUILD_CLI=OFF",
        "-DERL_INCLUDE_DIR=#{erl_include_dir()}"
      ] ++ extra

    # Configure only when the arguments change; otherwise `cmake --build` re-runs CMake by
    # itself whenever a CMakeLists.txt changed.
    stamp = Path.join(build_dir, "kiln_mix_configure_args")
    cache = Path.join(build_dir, "CMakeCache.txt")
    wanted = Enum.join(args, "\n")

    changed = File.read(stamp) != {:ok, wanted}

    if opts[:force] || !File.exists?(cache) || changed do
      # A -D option dropped from KILN_CMAKE_ARGS would stay in CMake's cache; a fresh cache makes
      # the build what the arguments say (the objects stay: only what changed is compiled again).
      if changed, do: File.rm(cache)
      # The generator can only be chosen for a fresh tree; Ninja when there is one.
      generator = if !File.exists?(cache) && System.find_executable("ninja"), do: ["-G", "Ninja"], else: []
      extra_note = if extra == [], do: "", else: " with #{Enum.join(extra, " ")}"

      File.mkdir_p!(build_dir)
      info("configuring the NIF build#{extra_note} in #{Path.relative_to_cwd(build_dir)}")

      output =
        cmd!("cmake", generator ++ args, "configuring",
          verbose: opts[:verbose],
          quiet: &configure_line/2,
          idle: "still configuring (CMake probes the compilers and toolkits)"
        )

      File.write!(stamp, wanted)
      report_backends(build_dir, output)
    end
  end

  # Without --verbose, configure shows Kiln's own lines and CMake's warnings, not its probing.
  defp configure_line(line, state) do
    cond do
      String.starts_with?(line, "CMake ") -> {true, :warning}
      String.starts_with?(line, "-- ") -> {false, nil}
      state == :warning -> {line != "", :warning}
      true -> {false, state}
    end
  end

  # "-- Kiln backend cuda: built" / "-- Kiln backend cuda: left out (reason)", from the top-level
  # CMakeLists.txt; kept beside the build so that the install message can repeat it.
  defp report_backends(build_dir, output) do
    found =
      Regex.scan(~r/^-- Kiln backend (\w+): (built|left out \((.*)\))$/m, output)
      |> Enum.map(fn
        [_, name, "built" | _] -> {name, nil}
        [_, name, _, reason] -> {name, reason}
      end)

    if found != [] do
      built = ["scalar", "cpu"] ++ for({name, nil} <- found, do: name)
      summary = "backends: " <> Enum.join(built, " ")
      File.write!(Path.join(build_dir, "kiln_mix_backends"), summary)
      info(summary)

      for {name, reason} <- found, reason do
        info("#{name} left out: #{reason}")
      end

      if {"cuda", nil} in found do
        info(
          "CUDA is most of the build time (minutes for its first compile); to build without it: " <>
            ~s(KILN_CMAKE_ARGS="-DKILN_WITH_CUDA=OFF")
        )
      end
    end
  end

  defp build!(build_dir, opts) do
    jobs = System.get_env("CMAKE_BUILD_PARALLEL_LEVEL") || Integer.to_string(System.schedulers_online())
    verbose = if opts[:verbose], do: ["--verbose"], else: []
    cuda = backends_summary(build_dir) =~ "cuda"

    # Said once the build turns out to have work: an up-to-date build stays silent.
    header = "compiling the NIF (#{jobs} jobs)" <> if(cuda, do: ", CUDA included", else: "")

    output =
      cmd!("cmake", ["--build", build_dir, "--target", "kiln_nif", "-j", jobs] ++ verbose, "building",
        verbose: true,
        header: header,
        idle: "still compiling" <> if(cuda, do: " (a CUDA file takes minutes on its own)", else: ""),
        # Ninja reports a step when it ends; with the elapsed time, a long one is visible as such.
        env: [{~c"NINJA_STATUS", ~c"  [%f/%t %es] "}]
      )

    # A CMakeLists.txt changed: `cmake --build` configured again, and the backends may differ.
    if output =~ "-- Kiln backend", do: report_backends(build_dir, output)
  end

  # Runs `exe`, printing its lines as they come (all with :verbose, else those `quiet` keeps),
  # and a note after @quiet_s seconds without output; raises with all of it when it fails.
  defp cmd!(exe, args, what, opts) do
    port =
      Port.open({:spawn_executable, System.find_executable(exe)}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        :hide,
        {:line, 65_536},
        args: args,
        env: Keyword.get(opts, :env, [])
      ])

    state = %{
      port: port,
      opts: opts,
      header: opts[:header],
      filter: nil,
      lines: [],
      partial: "",
      started: System.monotonic_time(:second)
    }

    {status, state} = collect(state)
    output = state.lines |> Enum.reverse() |> Enum.join("\n")

    if status != 0 do
      unless opts[:verbose], do: Mix.shell().info(output)
      Mix.raise("cmake failed while #{what} the Kiln NIF (exit status #{status})#{hint(output)}")
    end

    output
  end

  defp collect(%{port: port} = state) do
    receive do
      {^port, {:data, {:noeol, part}}} ->
        collect(%{state | partial: state.partial <> part})

      {^port, {:data, {:eol, part}}} ->
        line = state.partial <> part
        state = show(%{state | partial: "", lines: [line | state.lines]}, line)
        collect(state)

      {^port, {:exit_status, status}} ->
        {status, state}
    after
      @quiet_s * 1000 ->
        elapsed = System.monotonic_time(:second) - state.started
        info("#{state.opts[:idle] || "still working"} (#{elapsed} s so far)")
        collect(state)
    end
  end

  @noop ~r/^ninja: no work to do|^\[\s*\d+%\] Built target|^gmake.*Nothing to be done/

  defp show(state, line) do
    cond do
      state.opts[:verbose] && state.header && line =~ @noop ->
        state

      state.opts[:verbose] ->
        if state.header, do: info(state.header)
        Mix.shell().info(line)
        %{state | header: nil}

      true ->
        {keep, filter} = state.opts[:quiet].(line, state.filter)
        if keep, do: Mix.shell().info(line)
        %{state | filter: filter}
    end
  end

  defp info(message), do: Mix.shell().info("==> kiln: " <> message)

  # Turns the usual CMake failures into the package to install or the switch to flip; only the
  # part from the first error on is searched, since CMake mentions CUDA and OpenCL when all is well.
  defp hint(output) do
    output = to_string(output)

    errors =
      case Regex.run(~r/(CMake Error|FAILED:|error:).*/s, output) do
        [section | _] -> section
        nil -> output
      end

    cond do
      errors =~ ~r/Could not find[^\n]*"hwy"|hwy\/highway\.h: No such file/i ->
        ": Highway is missing: apt-get install libhwy-dev"

      errors =~ ~r/CMAKE_CXX_COMPILER/ ->
        ": no C++ compiler: apt-get install g++"

      errors =~ ~r/cuda|nvcc/i ->
        ~s(; to build without CUDA: KILN_CMAKE_ARGS="-DKILN_WITH_CUDA=OFF" mix compile)

      errors =~ ~r/opencl|\bCL\//i ->
        ~s(; to build without OpenCL: KILN_CMAKE_ARGS="-DKILN_WITH_OPENCL=OFF" mix compile)

      true ->
        ""
    end
  end

  defp install(build_dir, priv_dir) do
    built = Path.join(build_dir, "elixir/c_src/kiln_nif.so")
    target = Path.join(priv_dir, "kiln_nif.so")

    unless File.exists?(built), do: Mix.raise("CMake reported success but #{built} is missing")

    if File.read(built) == File.read(target) do
      {:noop, []}
    else
      # Write beside, then rename: a VM that has the old file mapped keeps its (unlinked) copy
      # instead of seeing it change under it.
      tmp = target <> ".tmp"
      File.cp!(built, tmp)
      File.rename!(tmp, target)

      backends = with summary when summary != "" <- backends_summary(build_dir), do: " (#{summary})"
      info("NIF installed in #{Path.relative_to_cwd(target)}#{backends}")
      {:ok, []}
    end
  end

  # What report_backends last wrote, e.g. "backends: scalar cpu opencl"; "" before the first configure.
  defp backends_summary(build_dir) do
    case File.read(Path.join(build_dir, "kiln_mix_backends")) do
      {:ok, summary} -> summary
      {:error, _} -> ""
    end
  end
end
