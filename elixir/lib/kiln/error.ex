# The exception for engine failures that are not the caller's fault (device errors, out of memory).
defmodule Kiln.Error do
  @moduledoc """
  Raised when the engine fails for a reason other than a bad argument.

  `kind` is the engine's error code: `:out_of_memory`, `:device_error` or `:internal`;
  `:node_error` when `Kiln.Cluster` has no node left that can map the rest of its input; or
  `:nif_not_loaded` when the native library could not be loaded (the message names the missing
  library and the package that provides it). Bad
  arguments, unknown backends and unavailable backends raise `ArgumentError` instead.
  """
  defexception [:kind, :message]

  @type t :: %__MODULE__{kind: atom, message: String.t()}
end
