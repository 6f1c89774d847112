# Mix compiler that builds the Kiln NIF (priv/kiln_nif.so) with CMake from the repository's C++ tree.
defmodule Mix.Tasks.Compile.KilnNif do
  @moduledoc """
  Builds `priv/kiln_nif.so` with CMake before the Elixir sources are compiled.

  Configures the repository one level above the Mix project (once, or again when the arguments
  change) in `_build/cmake`, builds only the `kiln_nif` target, and copies the module into
  `priv/` when it changed. CMake's own dependency tracking makes an up-to-date build a no-op.

  Environment:

    * `KILN_CMAKE_ARGS` - extra configure arguments, split like a shell would, e.g.
      `KILN_CMAKE_ARGS="-DKILN_WITH_CUDA=OFF -DKILN_WITH_OPENCL=OFF"`.
    * `CXX` - the C++ compiler, as CMake reads it.

  Pass `--verbose` (`mix compile --verbose`) to see CMake's output as it runs.
  """
  use Mix.Task.Compiler

  @shortdoc "Builds the Kiln NIF with CMake"

  @impl true
  def run(args) do
    {opts, _, _} = OptionParser.parse(args, switches: [verbose: :boolean, force: :boolean])
    project_dir = Path.dirname(Mix.Project.project_file())
    source_dir = Path.expand("..", project_dir)
    # Shared by every Mix env: the NIF does not depend on it, and the engine takes a while to build.
    build_dir = Path.join(Path.dirname(Mix.Project.build_path()), "cmake")

    check_tools!(source_dir)
    configure!(source_dir, build_dir, opts)
    build!(build_dir, opts)
    result = install(build_dir, project_dir)
    # Mix links _build/ENV/lib/kiln/priv to priv/ before the compilers run, and only if priv/
    # exists then; in a fresh checkout it did not, so link it now that it does.
    Mix.Project.build_structure()
    result
  end

  @impl true
  def clean do
    # The CMake tree stays: it is shared across envs and rebuilding the engine is slow.
    File.rm(Path.join(Path.dirname(Mix.Project.project_file()), "priv/kiln_nif.so"))
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

    # Reconfigure only when the arguments change; otherwise `cmake --build` re-runs CMake by
    # itself whenever a CMakeLists.txt changed.
    stamp = Path.join(build_dir, "kiln_mix_configure_args")
    cache = Path.join(build_dir, "CMakeCache.txt")
    wanted = Enum.join(args, "\n")

    if opts[:force] || !File.exists?(cache) || File.read(stamp) != {:ok, wanted} do
      # The generator can only be chosen for a fresh tree; Ninja when there is one.
      generator = if !File.exists?(cache) && System.find_executable("ninja"), do: ["-G", "Ninja"], else: []

      File.mkdir_p!(build_dir)
      Mix.shell().info("==> kiln: configuring the NIF build in #{Path.relative_to_cwd(build_dir)}")
      cmd!("cmake", generator ++ args, opts, "configuring")
      File.write!(stamp, wanted)
    end
  end

  defp build!(build_dir, opts) do
    jobs = Integer.to_string(System.schedulers_online())
    cmd!("cmake", ["--build", build_dir, "--target", "kiln_nif", "-j", jobs], opts, "building")
  end

  defp cmd!(exe, args, opts, what) do
    {output, status} =
      if opts[:verbose] do
        System.cmd(exe, args, stderr_to_stdout: true, into: IO.stream(:stdio, :line))
      else
        System.cmd(exe, args, stderr_to_stdout: true)
      end

    if status != 0 do
      unless opts[:verbose], do: Mix.shell().info(output)
      Mix.raise("cmake failed while #{what} the Kiln NIF (exit status #{status})#{hint(output)}")
    end
  end

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

  defp install(build_dir, project_dir) do
    built = Path.join(build_dir, "elixir/c_src/kiln_nif.so")
    target = Path.join(project_dir, "priv/kiln_nif.so")

    unless File.exists?(built), do: Mix.raise("CMake reported success but #{built} is missing")

    if File.read(built) == File.read(target) do
      {:noop, []}
    else
      File.mkdir_p!(Path.dirname(target))
      # Write beside, then rename: a VM that has the old file mapped keeps its (unlinked) copy
      # instead of seeing it change under it.
      tmp = target <> ".tmp"
      File.cp!(built, tmp)
      File.rename!(tmp, target)
      Mix.shell().info("Built priv/kiln_nif.so")
      {:ok, []}
    end
  end
end
