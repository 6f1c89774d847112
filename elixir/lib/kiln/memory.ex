# Size checks before allocating: a call whose data cannot fit raises instead of aborting the VM.
defmodule Kiln.Memory do
  @moduledoc false

  import Bitwise, only: [<<<: 2]

  # The VM aborts the whole node when a heap or binary allocation fails ("eheap_alloc: Cannot
  # allocate"). A call's result size is known before it starts, so it is compared with what the
  # system can still give, and an ArgumentError names both instead.

  # Below this, a call cannot matter to any machine that runs a VM: no file is read for it.
  @small 64 * 1024 * 1024

  @doc "Bytes a list of `n` results costs on the heap (a cons cell of two words, small integers)."
  def list_bytes(n), do: n * 16

  @doc "Bytes `n` int64 cost in a binary or a native array."
  def int64_bytes(n), do: n * 8

  @doc """
  Checks what a call over `n` elements allocates: its result (a list or a binary of `n`) and,
  for a list result, the native array its input is decoded into.
  """
  def check_result!(as_list, n, what) do
    bytes = if as_list, do: list_bytes(n) + int64_bytes(n), else: int64_bytes(n)
    check!(bytes, what)
  end

  @doc """
  Raises ArgumentError when `bytes` are more than are available; `what` (a string, or a function
  returning one, so that nothing is built on the usual path) names the data.
  """
  def check!(bytes, what) do
    limit = Application.get_env(:kiln, :max_memory)

    if bytes >= @small or (is_integer(limit) and bytes > limit) do
      case available(limit) do
        {avail, source} when bytes > avail ->
          what = if is_function(what, 0), do: what.(), else: what

          raise ArgumentError,
                "the data of #{what} needs about #{bytes} bytes of memory (#{human(bytes)}), more than the " <>
                  "#{avail} bytes (#{human(avail)}) available (#{source})"

        _ ->
          :ok
      end
    end

    :ok
  end

  @doc "The bytes available now and where the figure comes from, or nil when nothing says."
  def available(limit \\ Application.get_env(:kiln, :max_memory)) do
    [
      meminfo(),
      cgroup(),
      if(is_integer(limit) and limit >= 0, do: {limit, "config :kiln, max_memory"})
    ]
    |> Enum.reject(&is_nil/1)
    |> Enum.min_by(&elem(&1, 0), fn -> nil end)
  end

  defp meminfo do
    with {:ok, text} <- File.read("/proc/meminfo"),
         [_, kb] <- Regex.run(~r/^MemAvailable:\s+(\d+) kB/m, text) do
      {String.to_integer(kb) * 1024, "MemAvailable in /proc/meminfo"}
    else
      _ -> nil
    end
  end

  # cgroup v2: the container's limit less what it already uses ("max" where there is none).
  defp cgroup do
    with {:ok, max} <- File.read("/sys/fs/cgroup/memory.max"),
         {max, _} <- Integer.parse(max),
         {:ok, current} <- File.read("/sys/fs/cgroup/memory.current"),
         {current, _} <- Integer.parse(current) do
      {max(max - current, 0), "the cgroup's memory.max less memory.current"}
    else
      _ -> nil
    end
  end

  defp human(bytes) when bytes >= 1 <<< 30, do: "#{Float.round(bytes / (1 <<< 30), 1)} GiB"
  defp human(bytes) when bytes >= 1 <<< 20, do: "#{Float.round(bytes / (1 <<< 20), 1)} MiB"
  defp human(bytes), do: "#{Float.round(bytes / 1024, 1)} KiB"
end
