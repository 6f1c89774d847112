# backend: :auto honours device: (it used to be ignored): a device of that index among the backends auto may choose, or ArgumentError.
defmodule Kiln.DeviceOptionTest do
  use ExUnit.Case, async: true

  defmodule K do
    import Kiln.Kernel
    defkernel twice(x), do: x * 2
  end

  @gpu9 Enum.any?(Kiln.devices(), &(&1.gpu and &1.available and &1.index == 9))

  test "an index no device auto may choose has raises, for the map, buffers and kernels" do
    if @gpu9, do: flunk("this machine has a GPU with index 9; the test assumes none")

    for call <- [
          fn -> Kiln.LogisticMap.run([1, 2, 3], 61, 22, device: 9) end,
          fn -> Kiln.Buffer.upload([1, 2, 3], device: 9) end,
          fn -> K.twice([1, 2, 3], device: 9) end
        ] do
      error = assert_raise ArgumentError, call
      assert error.message =~ "no device 9"
    end

    assert Kiln.LogisticMap.run([1, 2, 3], 61, 22, device: 0) == [28, 25, 37]
    assert K.twice([1, 2, 3], device: 0) == [2, 4, 6]
  end
end
