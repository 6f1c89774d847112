# The seed's map as a kernel against the built-in map, end to end from a binary and resident, at 10, 100 and 1000 iterations.
#   usage (elixir/): mix run ../docs/benchmarks/h200-2026-12-02/kernel_rows.exs [n] [backends...]
defmodule Seed do
  import Kiln.Kernel
  defkernel expr(x, p, mu), do: rem(mu * x * (x + 1), p)
  defkernel reduce(x, p, mu, k), do: Enum.reduce(1..k, x, fn _, x -> rem(mu * x * (x + 1), p) end)
  # Not the map: one more operation, so the general path (interpreted or compiled) runs it.
  defkernel plus(x, p, mu), do: rem(mu * x * (x + 1), p) + 0
  defkernel three(a, b, c), do: {a + b * c, a - c}
end

{n, backends} =
  case System.argv() do
    [] -> {33_554_432, [:cuda, :opencl, :cpu]}
    [n | bs] -> {String.to_integer(n), if(bs == [], do: [:cuda, :opencl, :cpu], else: Enum.map(bs, &String.to_atom/1))}
  end

p = 6_700_417
mu = 22
bin = Kiln.Binary.iota(1, n)
median = fn f, reps ->
  f.()
  ts = for _ <- 1..reps, do: (t0 = System.monotonic_time(:microsecond); f.(); System.monotonic_time(:microsecond) - t0)
  Enum.at(Enum.sort(ts), div(reps, 2)) / 1000
end

for backend <- backends, Enum.any?(Kiln.devices(), &(&1.backend == backend and &1.available)) do
  device = if backend == :opencl, do: Enum.find(Kiln.devices(), &(&1.backend == :opencl and &1.gpu)), else: nil
  dev = if device, do: device.index, else: 0
  if backend == :opencl and device == nil, do: IO.puts("opencl: no GPU device, skipped")
  if backend != :opencl or device do
    for k <- [10, 100, 1000] do
      reps = if k == 1000 and backend == :cpu, do: 3, else: 7
      want = Kiln.LogisticMap.run(bin, p, mu, iterations: k, backend: backend, device: dev)
      ^want = Seed.expr(bin, p, mu, iterations: k, backend: backend, device: dev)
      ^want = Seed.reduce(bin, p, mu, k, backend: backend, device: dev)
      built = median.(fn -> Kiln.LogisticMap.run(bin, p, mu, iterations: k, backend: backend, device: dev) end, reps)
      ex = median.(fn -> Seed.expr(bin, p, mu, iterations: k, backend: backend, device: dev) end, reps)
      red = median.(fn -> Seed.reduce(bin, p, mu, k, backend: backend, device: dev) end, reps)
      buf = Kiln.Buffer.upload(bin, backend: backend, device: dev)
      res_built = median.(fn -> Kiln.Buffer.run(buf, p, mu, iterations: k) end, reps)
      res_kernel = median.(fn -> Seed.reduce(buf, p, mu, k) end, reps)
      ^want = Kiln.Buffer.download(Seed.reduce(Kiln.Buffer.upload(bin, backend: backend, device: dev), p, mu, k))
      IO.puts("#{backend} n=#{n} k=#{k}: binary built-in #{built} ms, kernel expr #{ex} ms, kernel reduce #{red} ms; " <>
              "resident built-in #{res_built} ms, kernel reduce #{res_kernel} ms")
    end
    if backend != :cpu or n <= 4_194_304 do
      plus_ms = median.(fn -> Seed.plus(bin, p, mu, iterations: 10, backend: backend, device: dev) end, 3)
      IO.puts("#{backend} n=#{n} k=10: general path (map + 0) #{plus_ms} ms")
    end
    a = Kiln.Buffer.upload(bin, backend: backend, device: dev)
    b = Kiln.Buffer.upload(bin, backend: backend, device: dev)
    c = Kiln.Buffer.upload(bin, backend: backend, device: dev)
    {_s, stats} = Seed.three_stats(a, b, c)
    ms = median.(fn -> Seed.three(a, b, c) end, 7)
    gbs = 5 * n * 8 / (ms / 1000) / 1.0e9
    IO.puts("#{backend} n=#{n}: three inputs two outputs on buffers #{ms} ms per call (kernel #{Float.round(stats.kernel_s * 1000, 3)} ms), #{Float.round(gbs, 1)} GB/s by call")
  end
end
