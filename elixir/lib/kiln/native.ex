# The NIF functions of priv/kiln_nif.so; private to Kiln, whose public modules validate arguments first.
defmodule Kiln.Native do
  @moduledoc false

  # A NIF that fails to load must not fail on_load: the module would then not exist, and the first
  # call would raise UndefinedFunctionError with no word on why. The module loads, the reason is
  # kept, and every function raises it (not_loaded!/0) at its first call.
  @on_load :load_nif

  @doc false
  def load_nif do
    result =
      try do
        load_from(nif_path())
      rescue
        e -> {:error, "Kiln's NIF could not be loaded: " <> Exception.message(e)}
      end

    with {:error, message} <- result, do: :persistent_term.put({__MODULE__, :load_error}, message)
    :ok
  end

  @doc false
  # kiln_nif (.so added by the VM) in Kiln's priv dir: an application's _build/ENV/lib/kiln/priv,
  # or a release's lib/kiln-VSN/priv; beside this module's ebin when :kiln is not a known app.
  def nif_path do
    case {:code.priv_dir(:kiln), :code.which(__MODULE__)} do
      {dir, _} when is_list(dir) -> Path.join(to_string(dir), "kiln_nif")
      {_, beam} when is_list(beam) -> Path.join([Path.dirname(to_string(beam)), "..", "priv", "kiln_nif"])
      _ -> "priv/kiln_nif"
    end
  end

  @doc false
  # Loads the NIF at `path` (without ".so"): :ok, or {:error, message} naming what is missing.
  def load_from(path) do
    case :erlang.load_nif(String.to_charlist(path), 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, {reason, text}} -> {:error, load_error_message(path, reason, to_string(text))}
    end
  end

  @doc false
  def load_error_message(path, reason, text) do
    file = path <> ".so"

    cause =
      case Regex.run(~r/([^\s'"():]+\.so[^\s'"():]*): cannot open shared object file/, text) do
        [_, library] ->
          if Path.basename(library) == Path.basename(file) do
            "it does not exist: Kiln's NIF was not built or not installed there (mix compile builds it)"
          else
            "the shared library #{library} it needs was not found" <> package_hint(library)
          end

        nil ->
          case Regex.run(~r/version `([^']+)' not found/, text) do
            [_, version] ->
              "this system's libraries are older than the ones it was built against (#{version} is " <>
                "missing): build Kiln on this system, or install a newer libstdc++6"

            nil ->
              "#{reason}"
          end
      end

    "Kiln's NIF could not be loaded from #{file}: #{cause} (the loader said: #{text})"
  end

  # The Debian/Ubuntu package that provides a library the NIF links, where it is known.
  defp package_hint(library) do
    case Path.basename(library) do
      "libOpenCL.so" <> _ -> "; apt-get install ocl-icd-libopencl1 (or rebuild with -DKILN_WITH_OPENCL=OFF)"
      "libhwy.so." <> soversion -> "; apt-get install libhwy#{soversion}"
      "libnvrtc" <> _ -> "; it comes with the CUDA toolkit (or rebuild with -DKILN_WITH_CUDA=OFF)"
      "libcuda" <> _ -> "; it comes with the NVIDIA driver (or rebuild with -DKILN_WITH_CUDA=OFF)"
      "libcudart" <> _ -> "; it comes with the CUDA toolkit (or rebuild with -DKILN_WITH_CUDA=OFF)"
      "libstdc++.so" <> _ -> "; apt-get install libstdc++6"
      "libgcc_s.so" <> _ -> "; apt-get install libgcc-s1"
      _ -> ""
    end
  end

  # Every function's body when the NIF is not loaded: raises the load error kept by load_nif/0.
  defp not_loaded! do
    message =
      :persistent_term.get({__MODULE__, :load_error}, "Kiln's NIF is not loaded from #{nif_path()}.so")

    raise Kiln.Error, kind: :nif_not_loaded, message: message
  end

  # convert and kernel_run run small work at once; longer kernel runs (and conversions asked to,
  # as_job) go as jobs to Kiln's own threads (lists decoded on a dirty scheduler first), replying
  # {:started, ref, job} (Kiln.Engine waits), other conversions to dirty CPU schedulers; the
  # remaining functions run on dirty CPU schedulers, their *_io twins on dirty IO schedulers.
  def convert(_data, _as_list, _as_job), do: not_loaded!()
  def concat(_binaries), do: not_loaded!()

  # The one entry every kernel takes (see c_src/kiln_nif.cpp, kernel_run): a reply, or
  # {:started, ref, job} for a job that sends {ref, reply} when it ends (Kiln.Engine waits).
  def kernel_run(_kernel, _args, _opts), do: not_loaded!()
  def job_cancel(_job), do: not_loaded!()
  def jobs, do: not_loaded!()

  def devices, do: not_loaded!()
  def buffer_upload(_data, _backend, _device), do: not_loaded!()
  def buffer_upload_io(_data, _backend, _device), do: not_loaded!()
  def buffer_download(_buffer, _as_list), do: not_loaded!()
  def buffer_download_io(_buffer, _as_list), do: not_loaded!()
  def live_buffers, do: not_loaded!()
end
