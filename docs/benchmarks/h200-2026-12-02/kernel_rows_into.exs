# The seed's map as a kernel against the built-in map on resident buffers, the kernel writing in place with into:, at 10, 100 and 1000 iterations.
#   usage (elixir/): mix run ../docs/benchmarks/h200-2026-12-02/kernel_rows_into.exs [n] [backends...]
# Each figure is the median of 9 calls (after one untimed): "call" is the Elixir call's wall time,
# "kernel" the engine's kernel_s for the same calls. Every form's result is checked against the
# built-in map's on a fresh upload.
defmodule SeedInto do
  import Kiln.Kernel
  defkernel expr(x, p, mu), do: rem(mu * x * (x + 1), p)
  defkernel reduce(x, p, mu, k), do: Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end)
end

{n, backends} =
  case System.argv() do
    [] -> {33_554_432, [:cuda, :opencl]}
    [n | bs] -> {String.to_integer(n), if(bs == [], do: [:cuda, :opencl], else: Enum.map(bs, &String.to_atom/1))}
  end

p = 6_700_417
mu = 22
reps = 9
bin = Kiln.Binary.iota(1, n)

# {median call ms, median kernel ms} of f, which returns {result, stats}.
timed = fn f ->
  f.()
  runs =
    for _ <- 1..reps do
      t0 = System.monotonic_time(:nanosecond)
      {_res, st} = f.()
      {(System.monotonic_time(:nanosecond) - t0) / 1.0e6, st.kernel_s * 1000}
    end
  med = fn xs -> Enum.at(Enum.sort(xs), div(length(xs), 2)) end
  {med.(Enum.map(runs, &elem(&1, 0))), med.(Enum.map(runs, &elem(&1, 1)))}
end

fmt = fn {call, kernel} -> "#{Float.round(call, 3)} ms (kernel #{Float.round(kernel, 3)})" end

for backend <- backends do
  # The backend's GPU where it has one (NVIDIA's OpenCL platform, not PoCL), else its first device.
  usable = Enum.filter(Kiln.devices(), &(&1.backend == backend and &1.available))
  device = Enum.find(usable, & &1.gpu) || List.first(usable)

  if device == nil do
    IO.puts("#{backend}: no device, skipped")
  else
    dev = device.index
    up = fn -> Kiln.Buffer.upload(bin, backend: backend, device: dev) end

    for k <- [10, 100, 1000] do
      want = Kiln.LogisticMap.run(bin, p, mu, iterations: k, backend: backend, device: dev)
      ^want = Kiln.Buffer.download(SeedInto.reduce(up.(), p, mu, k))
      b = up.()
      ^want = Kiln.Buffer.download(SeedInto.reduce(b, p, mu, k, into: b))
      b = up.()
      ^want = Kiln.Buffer.download(SeedInto.expr(b, p, mu, iterations: k, into: b))

      buf = up.()
      built = timed.(fn -> Kiln.Buffer.run_stats(buf, p, mu, iterations: k) end)
      red_into = timed.(fn -> SeedInto.reduce_stats(buf, p, mu, k, into: buf) end)
      expr_into = timed.(fn -> SeedInto.expr_stats(buf, p, mu, iterations: k, into: buf) end)
      red_new = timed.(fn -> SeedInto.reduce_stats(buf, p, mu, k) end)
      ratio = fn {c, _} -> Float.round(c / elem(built, 0), 2) end

      IO.puts(
        "#{backend} n=#{n} k=#{k} resident: built-in #{fmt.(built)}; kernel reduce into: #{fmt.(red_into)} " <>
          "(#{ratio.(red_into)}x); kernel expr into: #{fmt.(expr_into)} (#{ratio.(expr_into)}x); " <>
          "kernel reduce, new buffer: #{fmt.(red_new)} (#{ratio.(red_new)}x)"
      )
    end
  end
end
