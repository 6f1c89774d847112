# The kernel of three inputs and two outputs on resident buffers (CUDA by default): per call and by the kernel's events (median of 15).
#   usage (elixir/): mix run ../docs/benchmarks/h200-2026-12-02/three_rows.exs [n] [backend]
defmodule Three do
  import Kiln.Kernel
  defkernel three(a, b, c), do: {a + b * c, a - c}
end

{n, backend} =
  case System.argv() do
    [] -> {33_554_432, :cuda}
    [n] -> {String.to_integer(n), :cuda}
    [n, b | _] -> {String.to_integer(n), String.to_atom(b)}
  end

bin = Kiln.Binary.iota(1, n)
[a, b, c] = for _ <- 1..3, do: Kiln.Buffer.upload(bin, backend: backend, device: 0)
{u, v} = Three.three(a, b, c)
want_u = Kiln.Binary.from_list(Enum.map(1..min(n, 1000), &(&1 + &1 * &1)))
^want_u = binary_part(Kiln.Buffer.download(u), 0, min(n, 1000) * 8)
0 = Kiln.Buffer.download(v) |> binary_part(0, 8) |> :binary.decode_unsigned(:little)
runs =
  for _ <- 1..15 do
    t0 = System.monotonic_time(:nanosecond)
    {_res, st} = Three.three_stats(a, b, c)
    {(System.monotonic_time(:nanosecond) - t0) / 1.0e6, st.kernel_s * 1000}
  end
med = fn xs -> Enum.at(Enum.sort(xs), div(length(xs), 2)) end
call = med.(Enum.map(runs, &elem(&1, 0)))
kernel = med.(Enum.map(runs, &elem(&1, 1)))
bytes = 5 * 8 * n
IO.puts("#{backend} n=#{n}: three inputs two outputs, #{Float.round(call, 3)} ms per call (#{Float.round(bytes / call / 1.0e9, 2)} TB/s), " <>
        "kernel #{Float.round(kernel, 3)} ms (#{Float.round(bytes / kernel / 1.0e9, 2)} TB/s)")
