# The kernel encoding read from include/kiln/kernel.hpp at compile time: operations, fail reasons, limits.
defmodule Kiln.Kernel.Ops do
  @moduledoc false

  # The header is the one source of the encoding (KILN_KERNEL_OPS); copying its numbers here would
  # let the two drift apart silently.
  @header Path.expand("../../../../include/kiln/kernel.hpp", __DIR__)
  @external_resource @header

  source = File.read!(@header)

  [_, table] = Regex.run(~r/#define KILN_KERNEL_OPS\(X\)(.*?)\n\s*\n/s, source)

  ops =
    for [_, name, number, pops, operand] <- Regex.scan(~r/X\((\w+),\s*(\d+),\s*(\d+),\s*(\d+)\)/, table),
        into: %{} do
      {String.to_atom(name),
       %{number: String.to_integer(number), pops: String.to_integer(pops), operand: operand == "1"}}
    end

  if map_size(ops) == 0, do: raise("no operations found in KILN_KERNEL_OPS of #{@header}")

  [_, reasons] = Regex.run(~r/enum class fail_reason[^{]*\{([^}]*)\}/, source)

  fail_reasons =
    for [_, name, number] <- Regex.scan(~r/(\w+)\s*=\s*(\d+)/, reasons), into: %{} do
      {String.to_atom(name), String.to_integer(number)}
    end

  limits =
    for [_, name, value] <-
          Regex.scan(~r/inline constexpr std::size_t kernel_max_(\w+)\s*=\s*(\d+);/, source),
        into: %{} do
      {String.to_atom(name), String.to_integer(value)}
    end

  for key <- [:depth, :nesting, :locals, :args, :outputs], not Map.has_key?(limits, key) do
    raise "kernel_max_#{key} not found in #{@header}"
  end

  @ops ops
  @by_number Map.new(ops, fn {name, op} -> {op.number, name} end)
  @fail_reasons fail_reasons
  @limits limits

  @doc "The operation table: name => %{number, pops, operand}."
  def table, do: @ops

  @doc "The number of operation `name`."
  def number!(name), do: Map.fetch!(@ops, name).number

  @doc "The name of operation number `n`, or nil."
  def name(n), do: Map.get(@by_number, n)

  @doc "Whether operation `name` is followed by an operand word."
  def operand?(name), do: Map.fetch!(@ops, name).operand

  @doc "Operands operation `name` pops."
  def pops(name), do: Map.fetch!(@ops, name).pops

  def fail_reason!(name), do: Map.fetch!(@fail_reasons, name)

  @doc "The engine's limits: depth, nesting, locals, args, outputs."
  def limit(name), do: Map.fetch!(@limits, name)
end
