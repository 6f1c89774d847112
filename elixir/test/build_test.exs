# Kiln as a dependency: a scratch application (in a path with a space) builds its own NIF per Mix env, leaves Kiln's folder alone, and releases.
defmodule Kiln.BuildTest do
  # Builds the NIF twice (minutes on 2 cores): left out of a plain `mix test`; run it with
  # `mix test --include build` (or `--only build`).
  use ExUnit.Case, async: false

  @moduletag :build
  @moduletag timeout: 30 * 60_000

  @kiln_dir Path.expand("..", __DIR__)

  # CUDA and OpenCL off keep the builds short; dev builds without optimisation (faster, and its
  # NIF differs from prod's, which shows that each env keeps its own).
  @cmake_args %{
    "dev" => "-DKILN_WITH_CUDA=OFF -DKILN_WITH_OPENCL=OFF -DCMAKE_BUILD_TYPE=Debug",
    "prod" => "-DKILN_WITH_CUDA=OFF -DKILN_WITH_OPENCL=OFF"
  }

  # The README's example, as the plain-Elixir definition computes it.
  @expected Kiln.LogisticMap.Pure.run(1..3, 61, 22)

  @probe ~S"""
  IO.inspect(
    %{
      result: Kiln.LogisticMap.run(1..3, 61, 22),
      priv: to_string(:code.priv_dir(:kiln)),
      reasons: Map.new(Kiln.devices(), &{&1.backend, &1.reason})
    },
    label: "probe",
    limit: :infinity,
    printable_limit: :infinity
  )
  """

  setup_all do
    app = Path.join([System.tmp_dir!(), "kiln build #{System.unique_integer([:positive])}", "scratch app"])
    File.mkdir_p!(Path.join(app, "lib"))
    on_exit(fn -> File.rm_rf!(Path.dirname(app)) end)

    File.write!(Path.join(app, "mix.exs"), """
    defmodule ScratchApp.MixProject do
      use Mix.Project

      def project do
        [app: :scratch_app, version: "0.1.0", elixir: "~> 1.14", deps: [{:kiln, path: #{inspect(@kiln_dir)}}]]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(app, "lib/scratch_app.ex"), """
    defmodule ScratchApp do
      def run, do: Kiln.LogisticMap.run(1..3, 61, 22)
    end
    """)

    %{app: app}
  end

  # Runs mix in the scratch app under `env`, clear of the MIX_* settings of this test run.
  defp mix!(app, env, args) do
    clean =
      for var <- ~w(MIX_BUILD_PATH MIX_BUILD_ROOT MIX_DEPS_PATH MIX_EXS MIX_TARGET MIX_LOCKFILE),
          do: {var, nil}

    run!("mix", args, app, [{"MIX_ENV", env}, {"KILN_CMAKE_ARGS", @cmake_args[env]} | clean])
  end

  defp run!(exe, args, dir, env) do
    {output, status} = System.cmd(exe, args, cd: dir, env: env, stderr_to_stdout: true)
    assert status == 0, "#{exe} #{Enum.join(args, " ")} failed (#{status}):\n#{output}"
    output
  end

  defp probe(output) do
    [_, term] = Regex.run(~r/^probe: (%\{.*)/ms, output)
    {value, _} = Code.eval_string(term)
    value
  end

  # Every file and folder under Kiln's project, with its size and modification time.
  defp listing(dir) do
    Path.wildcard(Path.join(dir, "**"), match_dot: true)
    |> Enum.map(fn path ->
      %File.Stat{type: type, size: size, mtime: mtime} = File.lstat!(path, time: :posix)
      {Path.relative_to(path, dir), type, size, mtime}
    end)
    |> Enum.sort()
  end

  defp nif(app, env), do: Path.join([app, "_build", env, "lib", "kiln", "priv", "kiln_nif.so"])

  test "each env of an application builds its own NIF in its _build; Kiln's folder stays as it was; a release carries it",
       %{app: app} do
    before = listing(@kiln_dir)

    # dev: configure, the backends and why two are left out, the compile, where the NIF went.
    dev_out = mix!(app, "dev", ["run", "-e", @probe])
    assert dev_out =~ "==> kiln: configuring the NIF build with #{@cmake_args["dev"]} in "
    assert dev_out =~ "==> kiln: backends: scalar cpu\n"
    assert dev_out =~ "==> kiln: opencl left out: turned off with -DKILN_WITH_OPENCL=OFF"
    assert dev_out =~ "==> kiln: cuda left out: turned off with -DKILN_WITH_CUDA=OFF"
    assert dev_out =~ "==> kiln: compiling the NIF"
    assert dev_out =~ ~r/\[\d+\/\d+ [\d.]+s\] Linking CXX shared module elixir\/c_src\/kiln_nif.so/
    assert dev_out =~ "==> kiln: NIF installed in #{nif(app, "dev")} (backends: scalar cpu)"

    dev = probe(dev_out)
    assert @expected == [28, 25, 37]
    assert dev.result == @expected
    assert dev.priv == Path.dirname(nif(app, "dev"))
    assert dev.reasons.cuda == "Kiln was built without CUDA (turned off with -DKILN_WITH_CUDA=OFF)"
    assert dev.reasons.opencl == "Kiln was built without OpenCL (turned off with -DKILN_WITH_OPENCL=OFF)"

    assert File.read!(Path.join([app, "_build/dev/lib/kiln/cmake/CMakeCache.txt"])) =~
             "CMAKE_BUILD_TYPE:STRING=Debug"

    dev_nif = File.read!(nif(app, "dev"))

    # prod: its own build, then a release that carries the NIF and loads it from there.
    prod_out = mix!(app, "prod", ["release", "--overwrite"])
    assert prod_out =~ "==> kiln: NIF installed in #{nif(app, "prod")}"

    assert File.read!(Path.join([app, "_build/prod/lib/kiln/cmake/CMakeCache.txt"])) =~
             "CMAKE_BUILD_TYPE:STRING=Release"

    assert File.read!(nif(app, "prod")) != dev_nif

    release = Path.join([app, "_build", "prod", "rel", "scratch_app"])
    [kiln_lib] = Path.wildcard(Path.join(release, "lib/kiln-*"))
    assert File.read!(Path.join(kiln_lib, "priv/kiln_nif.so")) == File.read!(nif(app, "prod"))
    refute File.exists?(Path.join(kiln_lib, "cmake"))

    rel_out =
      run!(
        Path.join(release, "bin/scratch_app"),
        ["eval", "{:ok, _} = Application.ensure_all_started(:scratch_app)\n" <> @probe],
        app,
        []
      )

    rel = probe(rel_out)
    assert rel.result == @expected
    assert rel.priv == Path.join(kiln_lib, "priv")

    # dev again: its NIF is the one it built (untouched by prod's), and up to date (no rebuild).
    again = mix!(app, "dev", ["run", "-e", @probe])
    refute again =~ "==> kiln:"
    assert probe(again).result == @expected
    assert File.read!(nif(app, "dev")) == dev_nif
    for env <- ["dev", "prod"], do: assert(File.lstat!(Path.dirname(nif(app, env))).type == :directory)

    assert listing(@kiln_dir) == before
  end
end
