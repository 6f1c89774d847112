# A stand-in for the :telemetry library (not installable here): its handler API, enough for Kiln's tests.
defmodule :telemetry do
  @moduledoc false

  # attach/4, attach_many/4, detach/1 and execute/3 (all Kiln calls) as :telemetry documents them; the
  # handlers live in a persistent term, so they outlive the process that attached them, as they
  # do in the library.

  @key {__MODULE__, :handlers}

  def attach(id, event, fun, config), do: attach_many(id, [event], fun, config)

  def attach_many(id, events, fun, config) when is_function(fun, 4) do
    handlers = :persistent_term.get(@key, [])

    if List.keymember?(handlers, id, 0) do
      {:error, :already_exists}
    else
      :persistent_term.put(@key, [{id, events, fun, config} | handlers])
      :ok
    end
  end

  def detach(id) do
    handlers = :persistent_term.get(@key, [])

    if List.keymember?(handlers, id, 0) do
      :persistent_term.put(@key, List.keydelete(handlers, id, 0))
      :ok
    else
      {:error, :not_found}
    end
  end

  def execute(event, measurements, metadata)
      when is_list(event) and is_map(measurements) and is_map(metadata) do
    for {id, events, fun, config} <- :persistent_term.get(@key, []), event in events do
      try do
        fun.(event, measurements, metadata, config)
      rescue
        # The library detaches a handler that fails.
        _ -> detach(id)
      end
    end

    :ok
  end
end
