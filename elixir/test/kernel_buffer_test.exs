# Kernels over Kiln.Buffer: new buffers as results, into: for in-place chains, and the errors of mixing.
defmodule Kiln.KernelBufferTest do
  use ExUnit.Case, async: true

  defmodule K do
    import Kiln.Kernel
    defkernel step(x, p, mu), do: Enum.reduce(1..3, x, fn _, x -> rem(mu * x * (x + 1), p) end)
    defkernel sum_diff(a, b), do: {a + b, a - b}
  end

  @backends for d <- Kiln.devices(), d.available, d.backend in [:cpu, :scalar, :opencl], uniq: true, do: d.backend

  for backend <- @backends do
    test "#{backend}: results as new buffers, then in place with into:" do
      backend = unquote(backend)
      a = Enum.to_list(-500..1500)
      b = Enum.map(a, &(&1 * 3 - 7))
      ba = Kiln.Buffer.upload(a, backend: backend)
      bb = Kiln.Buffer.upload(b, backend: backend)

      {s, d} = K.sum_diff(ba, bb)
      assert %Kiln.Buffer{backend: ^backend} = s
      assert Kiln.Buffer.to_list(s) == Enum.zip_with(a, b, &(&1 + &2))
      assert Kiln.Buffer.to_list(d) == Enum.zip_with(a, b, &(&1 - &2))

      # Three steps in place, twice, equal the map's six iterations.
      assert K.step(ba, 6_700_417, 22, into: ba) == ba
      assert K.step(ba, 6_700_417, 22, into: ba) == ba
      assert Kiln.Buffer.to_list(ba) == Kiln.LogisticMap.run(a, 6_700_417, 22, iterations: 6, backend: :scalar)

      # Into other buffers, one per output.
      assert K.sum_diff(ba, bb, into: {s, d}) == {s, d}
      six = Kiln.Buffer.to_list(ba)
      assert Kiln.Buffer.to_list(s) == Enum.zip_with(six, b, &(&1 + &2))
    end
  end

  test "mixing host data and buffers, or a wrong into:, raises ArgumentError" do
    ba = Kiln.Buffer.upload([1, 2, 3], backend: :cpu)
    assert_raise ArgumentError, ~r/over buffers or over host data/, fn -> K.sum_diff(ba, [1, 2, 3]) end
    assert_raise ArgumentError, ~r/into: takes/, fn -> K.sum_diff(ba, ba, into: ba) end
    assert_raise ArgumentError, ~r/into: takes/, fn -> K.step([1, 2, 3], 61, 22, into: ba) end
    assert_raise ArgumentError, ~r/into: takes/, fn -> K.step(ba, 61, 22, into: :nope) end
  end
end
