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
  literals that fit in int64, `+`, `-` (binary and unary), `*`, `div/2`, `rem/2`, `abs/1`,
  `min/2`, `max/2`, the comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`), `true`, `false`, `not`,
  `and`, `or` (`!`, `&&`, `||` alike) and `if`/`unless` with both `do:` and `else:`. Every value
  is an integer or a boolean, as in Elixir: conditions and the operands of `not`/`and`/`or` must
  be booleans, arithmetic takes integers, and the kernel's value is an integer. Only the branch
  taken is evaluated, and `and`/`or` short-circuit, so `if x == 0, do: 0, else: div(1000, x)`
  never divides by zero. Anything else is a `CompileError` naming what is not supported.

      defkernel collatz(x), do: if(rem(x, 2) == 0, do: div(x, 2), else: 3 * x + 1)

  `defkernel name(x, p1, ...)` defines `name(data, p1, ..., opts \\\\ [])`, which runs the
  expression on the engine; `name_stats/n`, which also returns the engine's stats (as
  `Kiln.LogisticMap.run_stats/4` does: `:backend` and `:device` say where it ran); and
  `name_element(x, p1, ...)`, the same expression as plain Elixir: the definition its results are
  checked against.

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

  # The engine's operations (kiln::op, include/kiln/kernel.hpp).
  @ops %{
    arg: 0,
    literal: 1,
    boolean: 2,
    add: 6,
    sub: 7,
    mul: 8,
    div: 9,
    rem: 10,
    neg: 11,
    abs: 12,
    min: 13,
    max: 14,
    eq: 22,
    ne: 23,
    lt: 24,
    le: 25,
    gt: 26,
    ge: 27,
    not: 28,
    if_then: 29,
    if_else: 30,
    if_end: 31
  }
  @arithmetic %{+: :add, -: :sub, *: :mul, div: :div, rem: :rem, min: :min, max: :max}
  @comparison %{==: :eq, ===: :eq, !=: :ne, !==: :ne, <: :lt, <=: :le, >: :gt, >=: :ge}
  @supported "integers, its arguments, + - * div rem abs min max, comparisons, true, false, " <>
               "not, and, or, if/unless with else"

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
    stats_name = :"#{name}_stats"
    names = Enum.map(params, &Atom.to_string/1)

    quote do
      @doc false
      def unquote(element_name)(unquote_splicing(args)), do: unquote(body)

      def unquote(name)(data, unquote_splicing(param_args), opts \\ []) do
        {result, _stats} =
          Kiln.Kernel.run_stats(data, unquote(code), unquote(names), [unquote_splicing(param_args)], opts)

        result
      end

      def unquote(stats_name)(data, unquote_splicing(param_args), opts \\ []) do
        Kiln.Kernel.run_stats(data, unquote(code), unquote(names), [unquote_splicing(param_args)], opts)
      end
    end
  end

  @doc false
  # The postfix code of `expr` (a flat list of int64 words), or a CompileError. Every
  # subexpression is an integer or a boolean, checked here, so that the engine is never given an
  # expression Elixir would reject (a boolean in arithmetic, an integer as a condition).
  def compile(expr, element, params) do
    case emit(expr, {element, params}) do
      {code, :int} ->
        for word <- List.flatten(code), into: <<>>, do: <<word::signed-native-64>>

      {_, :bool} ->
        compile_error!(expr, "a kernel's value must be an integer, and #{show(expr)} is a boolean")
    end
  end

  defp emit(n, _vars) when is_integer(n), do: literal(n, n)
  defp emit(b, _vars) when is_boolean(b), do: {[@ops.boolean, if(b, do: 1, else: 0)], :bool}

  defp emit({var, _, ctx} = ast, {element, params}) when is_atom(var) and is_atom(ctx) do
    cond do
      var == element ->
        {[@ops.arg, 0], :int}

      index = Enum.find_index(params, &(&1 == var)) ->
        {[@ops.arg, index + 1], :int}

      true ->
        compile_error!(
          ast,
          "unknown variable #{var} (the kernel's arguments are #{Enum.join([element | params], ", ")})"
        )
    end
  end

  # A negative literal is the negation of a positive one in the AST; folded, so that
  # -9223372036854775808 is the literal it reads as (its positive part does not fit in int64).
  defp emit({:-, meta, [n]}, _vars) when is_integer(n), do: literal(-n, {:-, meta, [n]})
  defp emit({:-, _, [a]} = ast, vars), do: {[int!(a, vars, ast), @ops.neg], :int}
  defp emit({:+, _, [a]} = ast, vars), do: {int!(a, vars, ast), :int}
  defp emit({:abs, _, [a]} = ast, vars), do: {[int!(a, vars, ast), @ops.abs], :int}

  defp emit({op, _, [a, b]} = ast, vars) when is_map_key(@arithmetic, op),
    do: {[int!(a, vars, ast), int!(b, vars, ast), Map.fetch!(@ops, @arithmetic[op])], :int}

  defp emit({op, _, [a, b]} = ast, vars) when is_map_key(@comparison, op),
    do: {[int!(a, vars, ast), int!(b, vars, ast), Map.fetch!(@ops, @comparison[op])], :bool}

  defp emit({op, _, [a]} = ast, vars) when op in [:not, :!], do: {[bool!(a, vars, ast), @ops.not], :bool}

  # and/or (&&/||) short-circuit: branches, so that the right side runs only where Elixir runs it.
  defp emit({op, _, [a, b]} = ast, vars) when op in [:and, :&&],
    do: branch(bool!(a, vars, ast), bool!(b, vars, ast), [@ops.boolean, 0], :bool)

  defp emit({op, _, [a, b]} = ast, vars) when op in [:or, :||],
    do: branch(bool!(a, vars, ast), [@ops.boolean, 1], bool!(b, vars, ast), :bool)

  defp emit({op, _, [condition, clauses]} = ast, vars) when op in [:if, :unless] and is_list(clauses) do
    with [do: yes, else: no] <- Enum.sort(clauses) do
      {yes, no} = if op == :if, do: {yes, no}, else: {no, yes}
      {yes_code, yes_type} = emit(yes, vars)
      {no_code, no_type} = emit(no, vars)

      unless yes_type == no_type,
        do: compile_error!(ast, "#{op}'s branches must both be integers or both booleans in #{show(ast)}")

      branch(bool!(condition, vars, "#{op}'s condition"), yes_code, no_code, yes_type)
    else
      _ -> compile_error!(ast, "a kernel's #{op} needs both do: and else: (every element needs a value)")
    end
  end

  defp emit(ast, _vars),
    do: compile_error!(ast, "defkernel supports #{@supported}; got #{show(ast)}")

  defp branch(condition, yes, no, type),
    do: {[condition, @ops.if_then, yes, @ops.if_else, no, @ops.if_end], type}

  # The code of an operand that must be an integer (or a boolean); `context` (the expression
  # around it, or words for it) is for the error.
  defp int!(ast, vars, context), do: typed!(ast, vars, context, :int)
  defp bool!(ast, vars, context), do: typed!(ast, vars, context, :bool)

  defp typed!(ast, vars, context, want) do
    case emit(ast, vars) do
      {code, ^want} ->
        code

      _ ->
        {expected, got} = if want == :int, do: {"an integer", "a boolean"}, else: {"a boolean", "an integer"}
        where = if is_binary(context), do: context, else: show(context)
        compile_error!(ast, "#{show(ast)} is #{got} where #{where} needs #{expected}")
    end
  end

  defp show(ast), do: Macro.to_string(ast)

  defp literal(n, ast) do
    unless Args.int64_min() <= n and n <= Args.int64_max(),
      do: compile_error!(ast, "the literal #{n} does not fit in int64")

    {[@ops.literal, n], :int}
  end

  defp compile_error!(ast, message) do
    meta = if is_tuple(ast) and tuple_size(ast) == 3 and is_list(elem(ast, 1)), do: elem(ast, 1), else: []
    raise CompileError, description: message, line: Keyword.get(meta, :line, 0)
  end

  @doc false
  # Runs a compiled kernel: what the functions defkernel defines call.
  def run_stats(data, code, names, params, opts) do
    opts = Keyword.validate!(opts, iterations: 1, backend: :auto, device: 0, chunk_size: 0)

    for {name, value} <- Enum.zip(names, params), not Args.is_int64(value) do
      raise ArgumentError, "parameter #{name} must be an integer that fits in int64, got #{inspect(value)}"
    end

    iterations = Args.iterations!(opts[:iterations])
    backend = Args.backend!(opts[:backend])
    device = Args.device!(opts[:device])
    chunk = Args.chunk_size!(opts[:chunk_size])
    {nif_data, as_list} = Args.data!(data)

    nif = if Args.dirty_io?(backend), do: &Kiln.Native.kernel_run_io/3, else: &Kiln.Native.kernel_run/3
    kernel = {code, 1 + length(params), 1, 0, iterations}

    options = %{
      backend: backend,
      device: device,
      chunk_size: chunk,
      phase_times: false,
      host_share: true,
      as_list: as_list
    }

    case nif.(kernel, [nif_data | params], options) do
      {:ok, [result], stats} -> {result, stats}
      {:error, reason} -> Args.raise_error!(reason)
    end
  end
end
