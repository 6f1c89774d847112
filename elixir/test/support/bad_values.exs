# A seeded random generator of values Kiln's public functions must refuse, by the kind of argument.
defmodule Kiln.BadValues do
  @moduledoc false

  # Every value comes with a label, so that a failure says what was passed. Generation uses the
  # process's :rand state: seed it (Kiln.TestHelper.seed/3) and a run is reproducible.

  import Bitwise, only: [<<<: 2]

  @int64_min -0x8000_0000_0000_0000
  @int64_max 0x7FFF_FFFF_FFFF_FFFF

  @doc "A value of no argument kind Kiln takes as data or as a number."
  def junk do
    pick([
      :a,
      nil,
      true,
      1.5,
      -0.0,
      "abc",
      <<1, 2, 3>>,
      %{a: 1},
      %{},
      {1, 2},
      {},
      self(),
      make_ref(),
      fn -> 1 end,
      fn _ -> 1 end,
      ~D[2020-01-01],
      [a: 1]
    ])
  end

  @doc "Data (int64 elements) that the engine must refuse."
  def data do
    pick_fun([
      &non_data/0,
      &improper/0,
      fn -> [1, pick([:a, 1.5, nil, "2", [2], {2}, [[1]]]), 3] end,
      fn -> [pick([@int64_max + 1, @int64_min - 1, 1 <<< 100, -(1 <<< 100)])] end,
      fn -> Enum.shuffle([0, 1, 2, @int64_max + :rand.uniform(1000)]) end,
      fn -> pick([MapSet.new([:a, :b]), Stream.map([1, :b], & &1), Stream.map([1 <<< 64], & &1)]) end,
      fn -> pick([1..(1 <<< 64), (@int64_max - 2)..(@int64_max + 1), @int64_min..(@int64_min - 3)//-1]) end,
      &forged_range/0,
      &huge_range/0,
      fn -> <<0::size(8 * (8 * :rand.uniform(4) + :rand.uniform(7)))>> end
    ])
  end

  @doc "Data that even Pure (unbounded integers) must refuse."
  def pure_data do
    pick_fun([
      &non_data/0,
      &improper/0,
      fn -> [1, pick([:a, 1.5, nil, "2", [2], {2}]), 3] end,
      fn -> pick([MapSet.new([:a, :b]), Stream.map([1, :b], & &1)]) end,
      &forged_range/0,
      &huge_range/0,
      fn -> <<0::size(8 * (8 * :rand.uniform(4) + :rand.uniform(7)))>> end
    ])
  end

  @doc "A stream of chunks that must be refused: no enumerable, or one holding a bad chunk."
  def chunks do
    pick_fun([
      fn -> pick([:a, nil, 1, 1.5, "abc", %{a: 1}, {[1]}, self()]) end,
      fn -> [[1, 2], data(), [3]] end,
      fn -> Stream.map([[1], data()], & &1) end
    ])
  end

  defp non_data,
    do:
      pick([
        :a,
        nil,
        true,
        7,
        -(1 <<< 100),
        1.5,
        %{a: 1},
        %{},
        {1, 2},
        self(),
        make_ref(),
        fn -> 1 end,
        ~D[2020-01-01]
      ])

  defp improper, do: pick([[1 | 2], [1, 2 | :x], [1 | <<0::64>>], [[] | 3]])

  defp forged_range do
    pick([
      %Range{first: :a, last: 1, step: 1},
      %Range{first: 1, last: 5, step: 0},
      %Range{first: 1.0, last: 5, step: 1},
      %{__struct__: Range, first: 1, last: 3}
    ])
  end

  # Its result alone would need far more memory than any machine has.
  defp huge_range, do: pick([1..(1 <<< 40), 0..(1 <<< 50)//3])

  @doc "A p the engine refuses (it takes 1..2^32-1)."
  def p, do: pick([0, -1, -61, 1 <<< 32, 1 <<< 70, 6.0, nil, :p, "61", [61], 61..62])

  @doc "A p Pure refuses (any integer but 0)."
  def pure_p, do: pick([0, 6.0, nil, :p, "61", [61]])

  @doc "A mu the engine refuses (it takes int64)."
  def mu, do: pick([@int64_max + 1, @int64_min - 1, 1 <<< 100, 1.5, :mu, nil, "22", [22]])

  @doc "Not an integer at all."
  def non_integer, do: pick([1.5, :x, nil, "1", [1], {1}, %{}, self()])

  @doc "Not an int64."
  def non_int64, do: pick([@int64_max + 1, @int64_min - 1, 1 <<< 100, 1.5, :x, nil, "1"])

  @doc "Not a binary of int64: another term, or a binary of the wrong size."
  def non_binary, do: pick([:a, nil, [1, 2], 1..2, 1, %{}, <<1, 2, 3>>, <<0::72>>, "abcdefghi"])

  @doc "Not a buffer upload/2 made; `well_formed: false` leaves out structs whose fields have the right types."
  def buffer(opts \\ [well_formed: true]) do
    forged =
      if opts[:well_formed],
        do: [
          %Kiln.Buffer{ref: make_ref(), size: 3, backend: :cpu, device: "cpu"},
          %Kiln.Buffer{ref: make_ref(), size: 0, backend: :opencl, device: "x"}
        ],
        else: []

    pick(
      forged ++
        [
          :a,
          nil,
          make_ref(),
          %Kiln.Buffer{ref: :ref, size: 3, backend: :cpu, device: "cpu"},
          %Kiln.Buffer{ref: make_ref(), size: -1, backend: :cpu, device: "cpu"},
          %Kiln.Buffer{ref: make_ref(), size: 3, backend: :tpu, device: "cpu"},
          %{__struct__: Kiln.Buffer},
          %{ref: make_ref(), size: 3, backend: :cpu, device: "cpu"},
          {:buffer, make_ref()},
          [1, 2, 3]
        ]
    )
  end

  @doc "Not a kernel {module, name, params} of `module` (whose `name` takes two params)."
  def kernel(module, name) do
    pick([
      :a,
      nil,
      {module, name},
      {module, name, [1]},
      {module, name, [1, 2, 3]},
      {module, name, [1 | 2]},
      {module, name, [1, 1 <<< 64]},
      {module, name, [1, :a]},
      {module, name, %{}},
      {module, :nope, [1, 2]},
      {"#{module}", name, [1, 2]},
      {module, "#{name}", [1, 2]},
      {Enum, :map, [1, 2]},
      [module, name, [1, 2]],
      {module, name, [1, 2], []}
    ])
  end

  @doc "Options that are not a keyword list of `keys`, or give one of them a value of the wrong type."
  def opts(keys) do
    pick_fun([
      fn ->
        pick([
          :fast,
          %{iterations: 1},
          [1],
          [{"iterations", 1}],
          [{:iterations, 1} | 2],
          {:iterations, 1},
          "opts",
          42,
          [[a: 1]],
          nil
        ])
      end,
      fn ->
        [{pick([:iteration, :foo, :backends, :window, :batch, :nodes, :stages, :endianness] -- keys), 1}]
      end,
      fn ->
        key = pick(keys)
        [{key, option_value(key)}]
      end,
      fn ->
        key = pick(keys)
        [{key, option_value(key)}, {pick(keys), option_value(pick(keys))}] |> Enum.shuffle()
      end
    ])
  end

  @doc "A value of the wrong type (or range) for option `key`."
  def option_value(:backend), do: pick([:tpu, "cpu", 1, nil, [:cpu], :cuda_all])
  def option_value(:device), do: pick([-1, :every, 1.0, 1 <<< 40, "0", nil, [0]])
  def option_value(:iterations), do: pick([-1, 1.5, :ten, 1 <<< 64, nil, "10"])
  def option_value(:chunk_size), do: pick([-5, 1.0, :big, 1 <<< 64, "0"])
  def option_value(:phase_times), do: pick([1, nil, "true", :yes, 0])
  def option_value(:host_share), do: pick([1, nil, "true", :yes, 0])
  def option_value(:window), do: pick([0, -1, 1.5, :big, nil, "2"])
  def option_value(:batch), do: pick([0, -1, 1.5, :big, nil, "2"])

  def option_value(:nodes) do
    pick([
      [],
      :node,
      ["a"],
      [nil],
      [:nohost],
      [1 | 2],
      [node(), node()],
      [{node(), :x}],
      [{node(), [bogus: 1]}],
      [{node(), [iterations: -1]}],
      [{node(), [parts: 3]}],
      %{node() => []}
    ])
  end

  def option_value(:parts), do: pick([0, -3, 1.5, :many, "2"])
  def option_value(:in_flight), do: pick([0, -1, 1 <<< 70, :two, 2.0])
  def option_value(:timeout), do: pick([0, -1, 1 <<< 40, :never, 1.5, nil])
  def option_value(:stages), do: pick([0, 129, :x, -1, 2.0])
  def option_value(:variant), do: pick([:flow, "loop", nil, 1])
  def option_value(:endianness), do: pick([:middle, "big", nil, :native_endian, 1])

  defp pick(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)
  defp pick_fun(funs), do: pick(funs).()
end
