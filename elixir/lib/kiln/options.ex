# The one schema of Kiln's options: their checks, their defaults, and the defaults `config :kiln` sets.
defmodule Kiln.Options do
  @moduledoc """
  The options of Kiln's functions, checked in one place: `Kiln.LogisticMap`, `Kiln.Buffer`,
  `Kiln.Cluster`, `Kiln.LogisticMap.Pure` and `Kiln.Binary` each take a subset of them, named in
  their own docs.

  Options are a keyword list. Anything else (a map, an atom, a list of other terms), an option a
  function does not take, a key given twice or a value of the wrong type raises `ArgumentError`
  naming the option.

  ## Application configuration

  Some defaults can be set for the whole application:

      # config/config.exs (or runtime.exs)
      config :kiln,
        backend: :cpu,      # default :auto
        device: 0,          # default 0
        host_share: true,   # default true
        iterations: 10      # default 10

  They are read with `Application.get_env/3` at every call (so `Application.put_env/3` takes
  effect at once) and an option given to a call overrides them. A configured value is checked
  like an option where a call uses it; a bad one raises `ArgumentError` naming `config :kiln`
  (`Kiln.LogisticMap.run/4` reads `:host_share` only for the runs that reach the engine, not for
  the tiny inputs it maps in the calling process). `Kiln.Cluster` reads
  the configuration on the calling node and passes the values to every node, so all of them run
  with the caller's defaults. Kernels (`Kiln.Cluster.map_kernel/3`) keep their own defaults
  (`iterations: 1`, `backend: :auto`, `device: 0`).

  One more key is read from the configuration only:

    * `:max_memory` - at most this many bytes for the data of one call (its result, and the
      native copies of its input). Kiln checks the size of a call's data before allocating it,
      against the memory the system has available (`MemAvailable` in `/proc/meminfo`, and the
      cgroup's `memory.max` where one is set), and raises `ArgumentError` naming the bytes
      needed and available instead of letting the VM abort for want of memory; this key lowers
      that bound (default: none beyond the system's).

  ## The options

    * `:backend` - `:auto`, `:scalar`, `:cpu`, `:opencl` or `:cuda` (configurable).
    * `:device` - a non-negative device index, or `:all` (configurable).
    * `:iterations` - a non-negative integer (configurable).
    * `:chunk_size` - a non-negative integer, `0` or `nil` for the backend's choice.
    * `:phase_times`, `:host_share` - booleans (`:host_share` is configurable).
    * `:window` (`Kiln.LogisticMap.run_windows/4`), `:batch` (`Kiln.LogisticMap.stream/4`) -
      positive integers.
    * `:nodes`, `:parts`, `:in_flight`, `:timeout` - `Kiln.Cluster`'s.
    * `:stages`, `:variant` - `Kiln.LogisticMap.Pure`'s.
    * `:endianness` - `:native`, `:little` or `:big` (`Kiln.Binary`).
  """

  alias Kiln.Args

  @configurable [:backend, :device, :host_share, :iterations]

  @defaults %{
    backend: :auto,
    device: 0,
    iterations: 10,
    chunk_size: 0,
    phase_times: false,
    host_share: true,
    window: 65_536,
    batch: 65_536,
    nodes: nil,
    parts: nil,
    in_flight: 2,
    timeout: :infinity,
    stages: 1,
    variant: :loop,
    endianness: :native
  }

  # :erpc's largest finite timeout, and a bound on the workers one node may hold.
  @max_timeout 0xFFFF_FFFF
  @max_in_flight 1024

  @typedoc "A key of `keys`: an option with its schema default (or config), or `{option, default}`."
  @type key :: atom | {atom, term}

  @doc false
  # The options `opts` sets among `keys`, each checked, and every other key of `keys` at its
  # default: the configured one for the keys of @configurable, unless `keys` gives a default of
  # its own as `{key, default}` (then the configuration does not apply). In the order of `keys`.
  @spec validate!(term, [key]) :: keyword
  def validate!(opts, keys) do
    given!(opts, keys, opts, [])
    fill(keys, opts)
  end

  # Every key of `keys`, given or at its default: a plain recursion over lists, as this runs on
  # every call (a map of the given options cost more than the few keyfinds it saved).
  defp fill([], _opts), do: []

  defp fill([key | rest], opts) do
    name = key_name(key)

    case :lists.keyfind(name, 1, opts) do
      {_, value} -> [{name, check!(name, value)} | fill(rest, opts)]
      false -> [{name, default!(key)} | fill(rest, opts)]
    end
  end

  @doc false
  # Only the options `opts` sets, each checked (for per-node overrides, merged onto full options).
  @spec check_given!(term, [atom]) :: keyword
  def check_given!(opts, names) do
    given!(opts, names, opts, [])
    Enum.map(opts, fn {name, value} -> {name, check!(name, value)} end)
  end

  @doc "The default of `option` for a call now: the configured one where it is configurable."
  @spec default(atom) :: term
  def default(option) when option in @configurable, do: configured(option)
  def default(option) when is_map_key(@defaults, option), do: static_default(option)

  def default(option) do
    raise ArgumentError, "#{inspect(option)} is not one of Kiln's options: #{inspect(Map.keys(@defaults))}"
  end

  defp key_name({name, _default}), do: name
  defp key_name(name), do: name

  defp default!({_name, default}), do: default

  defp default!(name) when name in @configurable, do: configured(name)
  defp default!(name), do: static_default(name)

  defp configured(name) do
    # :application.get_env/2 is what Application.fetch_env/2 calls, less a remote call.
    case :application.get_env(:kiln, name) do
      {:ok, value} ->
        try do
          check!(name, value)
        rescue
          e in ArgumentError ->
            reraise ArgumentError, "config :kiln, #{name}: #{Exception.message(e)}", __STACKTRACE__
        end

      :undefined ->
        static_default(name)
    end
  end

  # One clause a default, as a map lookup costs more on every call.
  for {name, value} <- @defaults do
    defp static_default(unquote(name)), do: unquote(Macro.escape(value))
  end

  # Checks that the options are a keyword list whose keys are all among `keys`, each once (worded
  # as Keyword.validate!/2 words it). One pass, `seen` the keys met so far: this runs on every call.
  defp given!([{name, _value} | rest], keys, opts, seen) when is_atom(name) do
    cond do
      :lists.member(name, seen) ->
        raise ArgumentError, "duplicate keys #{inspect([name])} in #{inspect(opts, limit: 8)}"

      # The options may still turn out not to be a keyword list: say that first, as the rest
      # of the message lists their keys.
      not known?(name, keys) and not Keyword.keyword?(opts) ->
        given!(:not_keyword, keys, opts, seen)

      not known?(name, keys) ->
        names = Enum.map(keys, &key_name/1)
        unknown = opts |> Keyword.keys() |> Enum.reject(&(&1 in names)) |> Enum.uniq()

        raise ArgumentError,
              "unknown keys #{inspect(unknown)} in #{inspect(opts, limit: 8, printable_limit: 40)}, " <>
                "the allowed keys are: #{inspect(names)}"

      true ->
        given!(rest, keys, opts, [name | seen])
    end
  end

  defp given!([], _keys, _opts, _seen), do: :ok

  defp given!(_not_keyword, _keys, opts, _seen) do
    raise ArgumentError,
          "options must be a keyword list, got #{inspect(opts, structs: false, limit: 8, printable_limit: 40)}"
  end

  defp known?(name, keys), do: :lists.member(name, keys) or :lists.keymember(name, 1, keys)

  # Each check returns the value as the options keep it (`:device` stays `:all`; the NIF's form
  # is made where the NIF is called).
  defp check!(:backend, b), do: Args.backend!(b)

  defp check!(:device, d) do
    Args.device!(d)
    d
  end

  defp check!(:iterations, n), do: Args.iterations!(n)
  defp check!(:chunk_size, n), do: Args.chunk_size!(n)
  defp check!(:phase_times, flag), do: Args.boolean!(:phase_times, flag)
  defp check!(:host_share, flag), do: Args.boolean!(:host_share, flag)
  defp check!(:window, n), do: positive!(:window, n)
  defp check!(:batch, n), do: positive!(:batch, n)
  defp check!(:parts, nil), do: nil
  defp check!(:parts, n), do: positive!(:parts, n)

  defp check!(:in_flight, n) when is_integer(n) and n in 1..@max_in_flight, do: n

  defp check!(:in_flight, n) do
    raise ArgumentError, "in_flight must be a positive integer of at most #{@max_in_flight}, got #{show(n)}"
  end

  defp check!(:timeout, :infinity), do: :infinity
  defp check!(:timeout, t) when is_integer(t) and t in 1..@max_timeout, do: t

  defp check!(:timeout, t) do
    raise ArgumentError,
          "timeout must be a positive integer (ms, at most #{@max_timeout}) or :infinity, got #{show(t)}"
  end

  # Kiln.Cluster checks the list itself: its entries may carry options of their own.
  defp check!(:nodes, nodes), do: nodes

  defp check!(:stages, n) when is_integer(n) and n in 1..128, do: n
  defp check!(:stages, n), do: raise(ArgumentError, "stages must be an integer in 1..128, got #{show(n)}")

  defp check!(:variant, v) when v in [:loop, :inlined], do: v
  defp check!(:variant, v), do: raise(ArgumentError, "variant must be :loop or :inlined, got #{show(v)}")

  defp check!(:endianness, e) when e in [:native, :little, :big], do: e

  defp check!(:endianness, e),
    do: raise(ArgumentError, "endianness must be :native, :little or :big, got #{show(e)}")

  defp positive!(_name, n) when is_integer(n) and n > 0, do: n
  defp positive!(name, n), do: raise(ArgumentError, "#{name} must be a positive integer, got #{show(n)}")

  defp show(term), do: inspect(term, structs: false, limit: 8, printable_limit: 40)
end
