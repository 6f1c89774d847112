# Kernels written in Elixir: integer expressions compiled at build time into programs the engine runs.
defmodule Kiln.Kernel do
  @moduledoc """
  Kernels written in Elixir itself: `defkernel` takes an integer expression of the element and of
  parameters, checks at compile time that Kiln can run it, and defines a function that applies it
  to every element of a list, range or int64 binary in the native engine.

      defmodule MyKernels do
        import Kiln.Kernel

        defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)
      end

      MyKernels.logistic(1..3, 61, 22, iterations: 10)  #=> [28, 25, 37]

  The expression may use the element (the first argument), the parameters (the others), integer
  literals that fit in int64, `+`, `-` (binary and unary), `*`, `div/2` and `rem/2`. Anything else
  is a `CompileError` naming what is not supported.

  `defkernel name(x, p1, ...)` defines `name(data, p1, ..., opts \\\\ [])`, which runs the
  expression on the engine, and `name_element(x, p1, ...)`, the same expression as plain Elixir:
  the definition its results are checked against.

  Results are exactly Elixir's (`div` truncates, `rem` takes the dividend's sign) wherever every
  intermediate value fits in int64. Where one does not, Elixir goes on with a big integer and
  Kiln cannot: the call raises `ArgumentError` naming the first such element and iteration; a
  zero divisor raises `ArithmeticError`, as Elixir does. Parameters must fit in int64.

  ## Options

    * `:iterations` - times the expression is applied to each element (default `1`).
    * `:backend` - `:cpu` (every core) or `:scalar` (one thread), where kernels are interpreted
      a block of elements at a time; `:cuda`, which compiles the kernel into CUDA C with NVRTC
      (once per kernel and GPU architecture) and streams the data through the GPU as
      `Kiln.LogisticMap` does; `:opencl`, which compiles it into OpenCL C for the device (once per
      device and kernel), GPU or CPU; or `:auto` (default): a GPU that compiles kernels (CUDA
      first) for 65,536 elements or more, else `:cpu`.
    * `:device` - the device's index (default `0`), or `:all` with `:cuda`: every GPU shares the
      run.
    * `:chunk_size` - GPU backends: at most this many elements a launch (default `0`: the
      backend's own).
  """

  alias Kiln.Args
  require Kiln.Args

  @ops %{x: 0, param: 1, literal: 2, add: 3, sub: 4, mul: 5, div: 6, rem: 7, neg: 8}
  @binary %{+: :add, -: :sub, *: :mul, div: :div, rem: :rem}

  @doc "Defines a kernel; see the module doc."
  defmacro defkernel(call, do: body) do
    {name, args} = Macro.decompose_call(call) || compile_error!(call, "defkernel expects name(x, params...)")

    vars =
      Enum.map(args, fn
        {var, _, ctx} when is_atom(var) and is_atom(ctx) -> var
        other -> compile_error!(other, "defkernel's arguments must be plain variables")
      end)

    if vars == [], do: compile_error!(call, "defkernel needs the element as its first argument")
    if length(Enum.uniq(vars)) != length(vars), do: compile_error!(call, "defkernel's arguments must differ")

    [element | params] = vars
    code = compile(body, element, params)
    param_args = tl(args)
    element_name = :"#{name}_element"

    quote do
      @doc false
      def unquote(element_name)(unquote_splicing(args)), do: unquote(body)

      def unquote(name)(data, unquote_splicing(param_args), opts \\ []) do
        Kiln.Kernel.run(
          data,
          unquote(code),
          unquote(Enum.map(params, &Atom.to_string/1)),
          [unquote_splicing(param_args)],
          opts
        )
      end
    end
  end

  @doc false
  # The postfix code of `expr` (a flat list of int64 words), or a CompileError.
  def compile(expr, element, params) do
    expr |> emit(element, params) |> List.flatten()
  end

  defp emit(n, element, params) when is_integer(n), do: emit_literal(n, n, element, params)

  defp emit({var, _, ctx} = ast, element, params) when is_atom(var) and is_atom(ctx) do
    cond do
      var == element ->
        [@ops.x]

      index = Enum.find_index(params, &(&1 == var)) ->
        [@ops.param, index]

      true ->
        compile_error!(
          ast,
          "unknown variable #{var} (the kernel's arguments are #{Enum.join([element | params], ", ")})"
        )
    end
  end

  # A negative literal is the negation of a positive one in the AST; folded, so that
  # -9223372036854775808 is the literal it reads as (its positive part does not fit in int64).
  defp emit({:-, meta, [n]}, element, params) when is_integer(n),
    do: emit_literal(-n, {:-, meta, [n]}, element, params)

  defp emit({:-, _, [a]}, element, params), do: [emit(a, element, params), @ops.neg]
  defp emit({:+, _, [a]}, element, params), do: emit(a, element, params)

  defp emit({op, _, [a, b]}, element, params) when is_map_key(@binary, op) do
    [emit(a, element, params), emit(b, element, params), Map.fetch!(@ops, Map.fetch!(@binary, op))]
  end

  defp emit(ast, _element, _params) do
    compile_error!(
      ast,
      "defkernel supports integers, its arguments, +, -, *, div and rem; got #{Macro.to_string(ast)}"
    )
  end

  defp emit_literal(n, ast, _element, _params) do
    unless Args.int64_min() <= n and n <= Args.int64_max(),
      do: compile_error!(ast, "the literal #{n} does not fit in int64")

    [@ops.literal, n]
  end

  defp compile_error!(ast, message) do
    meta = if is_tuple(ast) and tuple_size(ast) == 3 and is_list(elem(ast, 1)), do: elem(ast, 1), else: []
    raise CompileError, description: message, line: Keyword.get(meta, :line, 0)
  end

  @doc false
  # Runs a compiled kernel: what the functions defkernel defines call.
  def run(data, code, names, params, opts) do
    opts = Keyword.validate!(opts, iterations: 1, backend: :auto, device: 0, chunk_size: 0)

    for {name, value} <- Enum.zip(names, params), not Args.is_int64(value) do
      raise ArgumentError, "parameter #{name} must be an integer that fits in int64, got #{inspect(value)}"
    end

    iterations = Args.iterations!(opts[:iterations])
    backend = Args.backend!(opts[:backend])
    device = Args.device!(opts[:device])
    chunk = Args.chunk_size!(opts[:chunk_size])
    {nif_data, as_list} = Args.data!(data)

    nif = if Args.dirty_io?(backend), do: &Kiln.Native.program_run_io/8, else: &Kiln.Native.program_run/8

    case nif.(nif_data, as_list, code, params, iterations, backend, device, chunk) do
      {:ok, result, _stats} -> result
      {:error, reason} -> Args.raise_error!(reason)
    end
  end
end
