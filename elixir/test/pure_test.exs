# The pure Elixir definition: stages and variants agree, on every data shape.
defmodule Kiln.PureTest do
  use ExUnit.Case, async: true

  import Kiln.TestHelper
  alias Kiln.LogisticMap.Pure

  setup do
    seed(4, 5, 6)
    :ok
  end

  test "stages 1, 2, 7 and 128 and both variants give the same results" do
    for length <- [0, 1, 5, 127, 1000] do
      data = random_int64s(length)
      {p, mu} = {random_p(), random_mu()}
      expected = Pure.run(data, p, mu)
      assert length(expected) == length

      for stages <- [1, 2, 7, 128], variant <- [:loop, :inlined] do
        assert Pure.run(data, p, mu, stages: stages, variant: variant) == expected,
               "stages: #{stages}, variant: #{variant}, length: #{length}"
      end
    end
  end

  test "the definition, step by step" do
    assert Pure.run(1..3, 61, 22) == [28, 25, 37]
    assert Pure.run([5], 7, -3, iterations: 1) == [rem(-3 * 5 * 6, 7)]

    assert Pure.run([-5], 7, 3, iterations: 2) == [
             rem(3 * rem(3 * -5 * -4, 7) * (rem(3 * -5 * -4, 7) + 1), 7)
           ]

    assert Pure.run([1, 2, 3], 61, 22, iterations: 0) == [1, 2, 3]
    # rem/2 takes the sign of the dividend: negative mu gives results in (-p, 0].
    assert Enum.all?(Pure.run(1..100, 61, -22), &(&1 <= 0 and &1 > -61))
  end

  test "binaries in give binaries out; ranges give lists" do
    data = random_int64s(300)
    {p, mu} = {random_p(), random_mu()}
    expected = Pure.run(data, p, mu)
    assert Pure.run(Kiln.Binary.from_list(data), p, mu, stages: 3) == Kiln.Binary.from_list(expected)
    assert Pure.run(-50..50//3, p, mu, stages: 7) == Pure.run(Enum.to_list(-50..50//3), p, mu)
  end
end
