# Mix project of Kiln's Elixir front end; the :kiln_nif compiler builds the NIF with CMake first.

# The compiler task lives in lib/mix, but Mix needs it before lib/ is compiled: it is loaded from
# source here (no deps are available to ship it, e.g. elixir_make), and elixirc_paths below leave
# lib/mix out so that it is not compiled a second time.
unless Code.ensure_loaded?(Mix.Tasks.Compile.KilnNif) do
  Code.require_file("lib/mix/tasks/compile.kiln_nif.ex", __DIR__)
end

defmodule Kiln.MixProject do
  use Mix.Project

  def project do
    [
      app: :kiln,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:kiln_nif] ++ Mix.compilers(),
      elixirc_paths: ["lib/kiln.ex", "lib/kiln"],
      deps: [],
      # test/build_test.exs builds the NIF in scratch applications (minutes): `mix test --include build`.
      aliases: [test: "test --exclude build"]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
