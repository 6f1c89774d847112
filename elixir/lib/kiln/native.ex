# The NIF functions of priv/kiln_nif.so; private to Kiln, whose public modules validate arguments first.
defmodule Kiln.Native do
  @moduledoc false

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:kiln), ~c"kiln_nif")
    :erlang.load_nif(path, 0)
  end

  # Dirty CPU schedulers; the *_io twins run on dirty IO schedulers (for GPU backends).
  def run(_data, _as_list, _p, _mu, _iterations, _backend, _device, _chunk, _phase_times, _host_share),
    do: :erlang.nif_error(:nif_not_loaded)

  def run_io(_data, _as_list, _p, _mu, _iterations, _backend, _device, _chunk, _phase_times, _host_share),
    do: :erlang.nif_error(:nif_not_loaded)

  def convert(_data, _as_list), do: :erlang.nif_error(:nif_not_loaded)
  def concat(_binaries), do: :erlang.nif_error(:nif_not_loaded)

  # The one entry every kernel takes (see c_src/kiln_nif.cpp, kernel_run).
  def kernel_run(_kernel, _args, _opts), do: :erlang.nif_error(:nif_not_loaded)
  def kernel_run_io(_kernel, _args, _opts), do: :erlang.nif_error(:nif_not_loaded)

  def devices, do: :erlang.nif_error(:nif_not_loaded)
  def buffer_upload(_data, _backend, _device), do: :erlang.nif_error(:nif_not_loaded)
  def buffer_upload_io(_data, _backend, _device), do: :erlang.nif_error(:nif_not_loaded)
  def buffer_run(_buffer, _p, _mu, _iterations), do: :erlang.nif_error(:nif_not_loaded)
  def buffer_run_io(_buffer, _p, _mu, _iterations), do: :erlang.nif_error(:nif_not_loaded)
  def buffer_download(_buffer, _as_list), do: :erlang.nif_error(:nif_not_loaded)
  def buffer_download_io(_buffer, _as_list), do: :erlang.nif_error(:nif_not_loaded)
  def live_buffers, do: :erlang.nif_error(:nif_not_loaded)
end
