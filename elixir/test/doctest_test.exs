# Runs the examples in the modules' documentation.
defmodule Kiln.DoctestTest do
  use ExUnit.Case, async: true

  doctest Kiln
  doctest Kiln.LogisticMap
  doctest Kiln.LogisticMap.Pure
  doctest Kiln.Binary
  doctest Kiln.Buffer
  doctest Kiln.Cluster
end
