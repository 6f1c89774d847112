# A VM where OpenCL's loader cannot be found: the NIF loads, OpenCL says why it is unavailable, the CPU backends work.
defmodule Kiln.WithoutOpenCLTest do
  use ExUnit.Case, async: true

  test "without libOpenCL the NIF loads, :opencl says why and :cpu, :scalar and :auto run" do
    ebin = Path.join(Mix.Project.app_path(), "ebin")

    script = """
    opencl = Enum.find(Kiln.devices(), &(&1.backend == :opencl))
    IO.puts("opencl available: \#{opencl.available}; reason: \#{opencl.reason}")
    for b <- [:cpu, :scalar, :auto], do: IO.puts("\#{b}: \#{inspect(Kiln.LogisticMap.run(1..3, 61, 22, backend: b))}")
    try do
      Kiln.LogisticMap.run(1..3, 61, 22, backend: :opencl)
    rescue
      e in ArgumentError -> IO.puts("opencl raised ArgumentError: \#{e.message}")
    end
    """

    env = [{"KILN_OPENCL_LIBRARY", "/nonexistent/libOpenCL.so.1"}, {"ERL_FLAGS", nil}]
    {output, status} = System.cmd("elixir", ["-pa", ebin, "-e", script], stderr_to_stdout: true, env: env)

    assert status == 0, output
    assert output =~ "opencl available: false; reason: "
    assert output =~ "ocl-icd-libopencl1"
    for b <- ~w(cpu scalar auto), do: assert(output =~ "#{b}: [28, 25, 37]")
    assert output =~ "opencl raised ArgumentError: backend opencl is unavailable"
  end
end
