# A NIF that cannot load: the message names the missing file or library (and its package), and every NIF function raises it.
defmodule Kiln.NativeLoadTest do
  use ExUnit.Case, async: true

  # Scratch files go to the system's temporary folder, not into the project (ExUnit's :tmp_dir).
  setup do
    dir = Path.join(System.tmp_dir!(), "kiln native load #{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    %{tmp_dir: dir}
  end

  # The NIF functions, from the table the NIF registers (c_src/kiln_nif.cpp), e.g. {"run", 10}.
  @nif_source Path.expand("../c_src/kiln_nif.cpp", __DIR__)
  @external_resource @nif_source
  @nif_functions Regex.scan(~r/\{"(\w+)", (\d+), guarded</, File.read!(@nif_source))
                 |> Enum.map(fn [_, name, arity] -> {String.to_atom(name), String.to_integer(arity)} end)

  # A shared object that needs libkiln_absent.so.1, which is built to link it and then removed:
  # loading it fails the way a NIF on a machine without one of its libraries does.
  defp nif_needing_absent_library(dir) do
    cc = System.find_executable("cc") || System.find_executable("gcc")
    File.write!(Path.join(dir, "absent.c"), "int kiln_absent(void) { return 1; }\n")

    File.write!(
      Path.join(dir, "nif.c"),
      "int kiln_absent(void);\nint kiln_uses(void) { return kiln_absent(); }\n"
    )

    absent = Path.join(dir, "libkiln_absent.so.1")
    nif = Path.join(dir, "kiln_nif.so")

    {_, 0} =
      System.cmd(cc, [
        "-shared",
        "-fPIC",
        "-Wl,-soname,libkiln_absent.so.1",
        "-o",
        absent,
        Path.join(dir, "absent.c")
      ])

    {_, 0} = System.cmd(cc, ["-shared", "-fPIC", "-o", nif, Path.join(dir, "nif.c"), absent])
    File.rm!(absent)
    nif
  end

  # Loads `path` from this module (Kiln.Native has its NIF already) and reports as Kiln.Native does.
  defp load_message(path) do
    assert {:error, {reason, text}} = :erlang.load_nif(String.to_charlist(path), 0)
    Kiln.Native.load_error_message(path, reason, to_string(text))
  end

  test "the registered NIF table is read and every function has a stub" do
    assert length(@nif_functions) >= 10
    exported = Kiln.Native.__info__(:functions)
    for f <- @nif_functions, do: assert(f in exported, "Kiln.Native lacks a stub for #{inspect(f)}")
  end

  test "a NIF file that does not exist is named, with how to build it", %{tmp_dir: dir} do
    path = Path.join([dir, "no such dir", "kiln_nif"])
    message = load_message(path)
    assert message =~ "Kiln's NIF could not be loaded from #{path}.so: it does not exist"
    assert message =~ "mix compile"
  end

  test "a library the NIF needs that is missing is named", %{tmp_dir: dir} do
    nif = nif_needing_absent_library(dir)
    message = load_message(Path.rootname(nif))
    assert message =~ "Kiln's NIF could not be loaded from #{nif}"
    assert message =~ "the shared library libkiln_absent.so.1 it needs was not found"
  end

  test "the libraries Kiln links map to the packages that provide them" do
    # The loader's text for a missing dependency, as dlopen words it (only the name differs).
    text = fn lib ->
      "Failed to load NIF library /app/_build/prod/lib/kiln/priv/kiln_nif: " <>
        "'#{lib}: cannot open shared object file: No such file or directory'"
    end

    for {lib, package} <- [
          {"libOpenCL.so.1", "apt-get install ocl-icd-libopencl1"},
          {"libhwy.so.1", "apt-get install libhwy1"},
          {"libnvrtc.so.12", "it comes with the CUDA toolkit"},
          {"libstdc++.so.6", "apt-get install libstdc++6"}
        ] do
      message = Kiln.Native.load_error_message("/app/kiln_nif", :load_failed, text.(lib))
      assert message =~ "the shared library #{lib} it needs was not found; #{package}"
    end

    unknown = Kiln.Native.load_error_message("/app/kiln_nif", :load_failed, text.("libfoo.so.3"))
    assert unknown =~ "the shared library libfoo.so.3 it needs was not found (the loader said:"
  end

  # A fresh VM with Kiln's compiled modules and, in its priv dir, a NIF that cannot load.
  test "with a NIF that cannot load, Kiln.Native loads and every NIF function raises the reason", %{
    tmp_dir: dir
  } do
    ebin = Path.join([dir, "lib", "kiln", "ebin"])
    priv = Path.join([dir, "lib", "kiln", "priv"])
    File.mkdir_p!(ebin)
    File.mkdir_p!(priv)
    File.cp_r!(Path.dirname(:code.which(Kiln.Native)), ebin)
    File.rename!(nif_needing_absent_library(dir), Path.join(priv, "kiln_nif.so"))

    script = """
    for {name, arity} <- #{inspect(@nif_functions)} do
      try do
        apply(Kiln.Native, name, List.duplicate(nil, arity))
        IO.puts("\#{name}/\#{arity} returned")
      rescue
        e in Kiln.Error -> IO.puts("\#{name}/\#{arity} raised \#{e.kind}: \#{e.message}")
        e -> IO.puts("\#{name}/\#{arity} raised \#{inspect(e.__struct__)}")
      end
    end
    Kiln.devices()
    """

    {output, status} =
      System.cmd("elixir", ["-pa", ebin, "-e", script], stderr_to_stdout: true, env: [{"ERL_FLAGS", nil}])

    # The first call's error is the VM's exit: a Kiln.Error, not an UndefinedFunctionError.
    assert status != 0
    assert output =~ "** (Kiln.Error) Kiln's NIF could not be loaded from #{Path.join(priv, "kiln_nif.so")}"
    refute output =~ "UndefinedFunctionError"
    # No on_load warning: the module loaded.
    refute output =~ "on_load"

    for {name, arity} <- @nif_functions do
      assert output =~
               "#{name}/#{arity} raised nif_not_loaded: Kiln's NIF could not be loaded from " <>
                 "#{Path.join(priv, "kiln_nif.so")}: the shared library libkiln_absent.so.1 it needs was not found"
    end
  end
end
