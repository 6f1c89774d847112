# The kernel language's compiler: Elixir AST to the engine's typed postfix code (include/kiln/kernel.hpp).
defmodule Kiln.Kernel.Compiler do
  @moduledoc false

  # A compiled value is %{code: [instr], types: [type], uni: [boolean], tuple: boolean}: code that
  # pushes one value per component, each component's type (:s64, :boolean, or :any for `fail`),
  # and whether it is the same for every element (loop bounds must be). An instr is {op} or
  # {op, operand}; words are made from them at the end, through the header's op table.
  #
  # ctx: %{file, line, module, vars, in_branch}; vars maps {name, context} to a binding:
  # {:value, [instr], type, uni} (code of one instruction that re-reads it) or {:tuple, [binding]}.
  # st: %{next: the next free local slot}.

  alias Kiln.Args
  alias Kiln.Kernel.Ops

  @int_binary %{
    +: :add,
    -: :sub,
    *: :mul,
    div: :div,
    rem: :rem,
    min: :min,
    max: :max,
    band: :band,
    &&&: :band,
    bor: :bor,
    |||: :bor,
    bxor: :bxor,
    "^^^": :bxor,
    bsl: :bsl,
    <<<: :bsl,
    bsr: :bsr,
    >>>: :bsr,
    **: :pow,
    pow: :pow
  }
  @comparison %{==: :eq, ===: :eq, !=: :ne, !==: :ne, <: :lt, <=: :le, >: :gt, >=: :ge}
  @qualifiers [Kernel, Bitwise]

  @max_words 4096

  def max_words, do: @max_words

  @doc """
  Compiles a kernel's body over its parameters (keys {name, context}, each an s64 argument).
  Returns %{words, outputs, locals, depth, nesting}, or raises CompileError.
  """
  def compile_kernel(name, params, body, ctx) do
    vars = params |> Enum.with_index() |> Map.new(fn {key, k} -> {key, {:value, [{:arg, k}], :s64, true}} end)
    ctx = Map.merge(%{vars: vars, in_branch: false}, ctx)
    {value, st} = compile(body, ctx, %{next: 0})

    for {type, i} <- Enum.with_index(value.types), type != :s64 and type != :any do
      what = if value.tuple, do: "element #{i} of its value", else: "its value"

      error!(
        body,
        ctx,
        "kernel #{name}'s value must be an integer or a tuple of integers, " <>
          "and #{what} (#{show(body)}) is a boolean; convert it, e.g. `if condition, do: 1, else: 0`"
      )
    end

    outputs = length(value.types)

    limit!(
      outputs <= Ops.limit(:outputs),
      body,
      ctx,
      "kernel #{name} has #{outputs} outputs; the engine allows #{Ops.limit(:outputs)} (kernel_max_outputs)"
    )

    words = words(value.code)
    {depth, nesting} = measure(words)

    limit!(
      depth <= Ops.limit(:depth),
      body,
      ctx,
      "kernel #{name} needs #{depth} values on its stack at once; the engine allows " <>
        "#{Ops.limit(:depth)} (kernel_max_depth): bind parts of the expression to variables"
    )

    limit!(
      nesting <= Ops.limit(:nesting),
      body,
      ctx,
      "kernel #{name} nests #{nesting} branches and loops; the engine allows " <>
        "#{Ops.limit(:nesting)} (kernel_max_nesting)"
    )

    limit!(
      st.next <= Ops.limit(:locals),
      body,
      ctx,
      "kernel #{name} needs #{st.next} local slots (one per binding, loop variable and " <>
        "accumulator); the engine allows #{Ops.limit(:locals)} (kernel_max_locals)"
    )

    limit!(
      length(words) <= @max_words,
      body,
      ctx,
      "kernel #{name} compiles to #{length(words)} words of code; Kiln allows #{@max_words} " <>
        "(longer kernels break OpenCL compilers): split it, or use a loop (Enum.reduce)"
    )

    %{words: words, outputs: outputs, locals: st.next, depth: depth, nesting: nesting}
  end

  defp limit!(true, _ast, _ctx, _message), do: :ok
  defp limit!(false, ast, ctx, message), do: error!(ast, ctx, message)

  # ---- words ------------------------------------------------------------------------------------

  # An instruction with an operand word exactly where the header's table says so.
  defp words(code) do
    Enum.flat_map(code, fn
      {op} ->
        if Ops.operand?(op), do: raise("#{op} needs an operand"), else: [Ops.number!(op)]

      {op, operand} ->
        if Ops.operand?(op), do: [Ops.number!(op), operand], else: raise("#{op} takes no operand")
    end)
  end

  @doc "The most values on the stack at once and the deepest nesting of branches and loops."
  def measure(words), do: measure(words, 0, [], 0, 0)

  defp measure([], depth, [], max_depth, max_nesting), do: {max(depth, max_depth), max_nesting}

  defp measure([number | rest], depth, frames, max_depth, max_nesting) do
    name = Ops.name(number)
    rest = if Ops.operand?(name), do: tl(rest), else: rest
    nesting = max(max_nesting, length(frames))

    case name do
      :if_then ->
        measure(rest, depth - 1, [depth - 1 | frames], max_depth, max(nesting, length(frames) + 1))

      :if_else ->
        measure(rest, hd(frames), frames, max(depth, max_depth), nesting)

      :if_end ->
        measure(rest, hd(frames) + 1, tl(frames), max(depth, max_depth), nesting)

      :loop_begin ->
        measure(rest, depth - 3, [depth - 3 | frames], max_depth, max(nesting, length(frames) + 1))

      :loop_end ->
        measure(rest, depth, tl(frames), max_depth, nesting)

      :local_set ->
        measure(rest, depth - 1, frames, max_depth, nesting)

      _ ->
        measure(rest, depth - Ops.pops(name) + 1, frames, max(depth - Ops.pops(name) + 1, max_depth), nesting)
    end
  end

  # ---- values -----------------------------------------------------------------------------------

  defp scalar(code, type, uni), do: %{code: code, types: [type], uni: [uni], tuple: false}
  defp literal(n), do: scalar([{:literal, n}], :s64, true)
  defp uniform?(v), do: Enum.all?(v.uni)

  # A value whose code is one instruction that only reads: it can be repeated instead of stored.
  defp simple?(%{tuple: false, code: [{op, _}]}) when op in [:arg, :literal, :boolean, :local_get], do: true
  defp simple?(_), do: false

  defp literal_value(%{code: [{:literal, n}], tuple: false}), do: {:ok, n}
  defp literal_value(_), do: :error

  defp fresh(st), do: {st.next, %{st | next: st.next + 1}}

  # ---- the compiler -----------------------------------------------------------------------------

  @doc false
  def compile(ast, ctx, st) do
    ctx = at(ast, ctx)
    node(ast, ctx, st)
  end

  # The line of the innermost expression with one, for errors on literals (which have none).
  defp at({_, meta, _}, ctx) when is_list(meta) do
    case Keyword.get(meta, :line) do
      nil -> ctx
      line -> %{ctx | line: line}
    end
  end

  defp at(_, ctx), do: ctx

  defp node(n, ctx, st) when is_integer(n), do: {literal!(n, n, ctx), st}

  defp node(b, _ctx, st) when is_boolean(b),
    do: {scalar([{:boolean, if(b, do: 1, else: 0)}], :boolean, true), st}

  defp node(n, ctx, _st) when is_float(n),
    do: error!(n, ctx, "#{show(n)} is a float; kernels compute on integers (int64) and booleans")

  defp node(%Range{} = r, ctx, _st),
    do:
      error!(r, ctx, "the range #{inspect(r)} is not a value a kernel computes with; use it in Enum.reduce/3")

  defp node({:_, _, ctx_atom} = ast, ctx, _st) when is_atom(ctx_atom),
    do: error!(ast, ctx, "_ cannot be read: it only ignores a value in a pattern")

  defp node({name, _, var_ctx} = ast, ctx, st) when is_atom(name) and is_atom(var_ctx) do
    case Map.fetch(ctx.vars, {name, var_ctx}) do
      {:ok, binding} ->
        {read(binding), st}

      :error ->
        known = ctx.vars |> Map.keys() |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> Enum.sort()

        error!(
          ast,
          ctx,
          "unknown variable #{name} (the variables here are #{Enum.join(known, ", ")}); " <>
            "a kernel sees its arguments and the variables it binds"
        )
    end
  end

  defp node({:@, _, [{name, _, atom}]} = ast, ctx, st) when is_atom(name) and is_atom(atom) do
    case attribute(ast, ctx) do
      n when is_integer(n) ->
        {literal!(n, ast, ctx), st}

      other ->
        error!(
          ast,
          ctx,
          "@#{name} is #{inspect(other, limit: 5)}; a kernel reads module attributes that are integers"
        )
    end
  end

  defp node({:__block__, _, [single]}, ctx, st), do: compile(single, ctx, st)
  defp node({:__block__, _, exprs}, ctx, st) when exprs != [], do: block(exprs, ctx, st)

  defp node({:=, _, [_, _]} = ast, ctx, st), do: block([ast], ctx, st)

  defp node({:|>, _, [left, right]}, ctx, st), do: compile(Macro.pipe(left, right, 0), ctx, st)

  defp node({:{}, _, elems} = ast, ctx, st), do: tuple(elems, ast, ctx, st)
  defp node({a, b}, ctx, st), do: tuple([a, b], {a, b}, ctx, st)

  defp node({:if, _, [condition, clauses]} = ast, ctx, st) when is_list(clauses),
    do: if_(:if, condition, clauses, ast, ctx, st)

  defp node({:unless, _, [condition, clauses]} = ast, ctx, st) when is_list(clauses),
    do: if_(:unless, condition, clauses, ast, ctx, st)

  defp node({:cond, _, [[do: clauses]]} = ast, ctx, st) when is_list(clauses),
    do: cond_(clauses, ast, ctx, st)

  defp node({:case, _, [subject, [do: clauses]]} = ast, ctx, st) when is_list(clauses),
    do: case_(subject, clauses, ast, ctx, st)

  defp node({:fn, _, _} = ast, ctx, _st),
    do: error!(ast, ctx, "a kernel cannot make functions; an fn is only the body of Enum.reduce/3")

  defp node({call, meta, args} = ast, ctx, st) when is_list(args) do
    case callee(call, meta) do
      {:local, name} -> call(name, args, ast, ctx, st)
      {:remote, module, name} -> remote(module, name, args, ast, ctx, st)
      :unknown -> unsupported!(ast, ctx)
    end
  end

  defp node(ast, ctx, _st), do: unsupported!(ast, ctx)

  # Kernel.x and Bitwise.x are the operators and functions themselves.
  # (Aliases are expanded before compiling: see prepare/2.)
  defp callee(name, _meta) when is_atom(name), do: {:local, name}
  defp callee({:., _, [module, name]}, _meta) when module in @qualifiers and is_atom(name), do: {:local, name}
  defp callee({:., _, [Integer, :pow]}, _meta), do: {:local, :pow}
  defp callee({:., _, [Enum, :reduce]}, _meta), do: {:local, :__enum_reduce__}
  defp callee({:., _, [Kiln.Kernel, :index]}, _meta), do: {:local, :index}

  defp callee({:., _, [module, name]}, _meta) when is_atom(module) and is_atom(name),
    do: {:remote, module, name}

  defp callee(_, _), do: :unknown

  defp unsupported!(ast, ctx) do
    error!(
      ast,
      ctx,
      "#{show(ast)} is not supported in a kernel; a kernel is written with integers, " <>
        "true/false, its arguments, variables, + - * div rem abs min max, comparisons, not and or, " <>
        "if/unless/cond/case, Bitwise, Integer.pow/**, index(), Enum.reduce over a range, |>, " <>
        "module attributes and calls to other kernels (see Kiln.Kernel)"
    )
  end

  # ---- operators --------------------------------------------------------------------------------

  # A negative literal is the negation of a positive one in the AST; folded, so that
  # -9223372036854775808 is the literal it reads as (its positive part does not fit in int64).
  defp call(:-, [n], ast, ctx, st) when is_integer(n), do: {literal!(-n, ast, ctx), st}
  defp call(:-, [a], ast, ctx, st), do: unary(:neg, a, ast, ctx, st)
  defp call(:+, [a], ast, ctx, st), do: int!(a, ast, ctx, st)
  defp call(:abs, [a], ast, ctx, st), do: unary(:abs, a, ast, ctx, st)
  defp call(name, [a], ast, ctx, st) when name in [:bnot, :"~~~"], do: unary(:bnot, a, ast, ctx, st)

  defp call(name, [a, b], ast, ctx, st) when is_map_key(@int_binary, name) do
    op = Map.fetch!(@int_binary, name)
    {va, st} = int!(a, ast, ctx, st)
    {vb, st} = int!(b, ast, ctx, st)

    with :pow <- op, {:ok, e} when e < 0 <- literal_value(vb) do
      error!(
        ast,
        ctx,
        "#{show(ast)} has the negative exponent #{e} (Integer.pow/2 raises " <>
          "ArithmeticError, ** gives a float); a kernel's exponent must be >= 0"
      )
    end

    {scalar(va.code ++ vb.code ++ [{op}], :s64, uniform?(va) and uniform?(vb)), st}
  end

  defp call(name, [a, b], ast, ctx, st) when is_map_key(@comparison, name) do
    {va, st} = int!(a, ast, ctx, st)
    {vb, st} = int!(b, ast, ctx, st)

    {scalar(va.code ++ vb.code ++ [{Map.fetch!(@comparison, name)}], :boolean, uniform?(va) and uniform?(vb)),
     st}
  end

  defp call(name, [a], ast, ctx, st) when name in [:not, :!] do
    {va, st} = bool!(a, ast, ctx, st)
    {scalar(va.code ++ [{:logical_not}], :boolean, uniform?(va)), st}
  end

  # and/or (&&/||) short-circuit: branches, so that the right side runs only where Elixir runs it.
  defp call(name, [a, b], ast, ctx, st) when name in [:and, :&&] do
    {va, st} = bool!(a, ast, ctx, st)
    {vb, st} = bool!(b, ast, branch_ctx(ctx), st)
    branch(va, vb, scalar([{:boolean, 0}], :boolean, true), ast, ctx, st)
  end

  defp call(name, [a, b], ast, ctx, st) when name in [:or, :||] do
    {va, st} = bool!(a, ast, ctx, st)
    {vb, st} = bool!(b, ast, branch_ctx(ctx), st)
    branch(va, scalar([{:boolean, 1}], :boolean, true), vb, ast, ctx, st)
  end

  defp call(:index, [], _ast, _ctx, st), do: {scalar([{:index}], :s64, false), st}

  defp call(:elem, [t, i], ast, ctx, st) when is_integer(i) do
    {vt, st} = compile(t, ctx, st)

    unless vt.tuple and i >= 0 and i < length(vt.types),
      do: error!(ast, ctx, "#{show(ast)}: elem/2 needs a tuple with an element #{i}")

    # The tuple's components are read from locals: bind it, then read one.
    {binding, st, code} = bind_value(vt, ctx, st)
    {:tuple, parts} = binding
    v = read(Enum.at(parts, i))
    {%{v | code: code ++ v.code}, st}
  end

  defp call(:__enum_reduce__, [range, init, fun], ast, ctx, st), do: reduce(range, init, fun, ast, ctx, st)

  defp call(:__enum_reduce__, _, ast, ctx, _st),
    do: error!(ast, ctx, "a kernel's Enum.reduce takes a range, an accumulator and `fn i, acc -> ... end`")

  defp call(name, args, ast, ctx, st) do
    case lookup(ctx.module, name, length(args)) do
      {:ok, definition} ->
        inline(definition, args, ast, ctx, st)

      :error ->
        hint = if name == :/, do: " (/ gives a float: use div/2)", else: ""

        error!(
          ast,
          ctx,
          "#{show(ast)} is not supported in a kernel#{hint}: #{name}/#{length(args)} is " <>
            "neither one of the operators and functions listed in Kiln.Kernel nor a kernel defined " <>
            "before this one with defkernel or defkernelp"
        )
    end
  end

  defp unary(op, a, ast, ctx, st) do
    {va, st} = int!(a, ast, ctx, st)
    {scalar(va.code ++ [{op}], :s64, uniform?(va)), st}
  end

  defp int!(ast, context, ctx, st), do: typed!(ast, context, ctx, st, :s64)
  defp bool!(ast, context, ctx, st), do: typed!(ast, context, ctx, st, :boolean)

  # The value of an operand that must be one integer (or one boolean); `context` (the expression
  # around it, or words for it) is for the error.
  defp typed!(ast, context, ctx, st, want) do
    {v, st} = compile(ast, ctx, st)

    case v do
      %{tuple: false, types: [t]} when t == want or t == :any ->
        {v, st}

      %{tuple: true} ->
        error!(ast, ctx, "#{show(ast)} is a tuple where #{where(context)} needs #{type_name(want)}")

      _ ->
        error!(
          ast,
          ctx,
          "#{show(ast)} is #{type_name(other(want))} where #{where(context)} needs #{type_name(want)}"
        )
    end
  end

  defp where(context) when is_binary(context), do: context
  defp where(context), do: show(context)

  defp type_name(:s64), do: "an integer"
  defp type_name(:boolean), do: "a boolean"
  defp other(:s64), do: :boolean
  defp other(:boolean), do: :s64

  defp tuple(elems, ast, ctx, st) do
    {values, st} =
      Enum.map_reduce(elems, st, fn e, st ->
        {v, st} = compile(e, ctx, st)

        if v.tuple,
          do: error!(e, ctx, "#{show(ast)}: a kernel's tuples hold integers and booleans, not tuples")

        {v, st}
      end)

    if values == [], do: error!(ast, ctx, "a kernel's tuple needs at least one element")

    {%{
       code: Enum.flat_map(values, & &1.code),
       types: Enum.flat_map(values, & &1.types),
       uni: Enum.flat_map(values, & &1.uni),
       tuple: true
     }, st}
  end

  defp literal!(n, ast, ctx) do
    unless Args.int64_min() <= n and n <= Args.int64_max(),
      do: error!(ast, ctx, "the literal #{n} does not fit in int64 (kernels compute on int64)")

    literal(n)
  end

  defp attribute({:@, _, [{name, _, _}]} = ast, ctx) do
    if Module.open?(ctx.module) do
      Module.get_attribute(ctx.module, name)
    else
      error!(ast, ctx, "@#{name} is not an integer of #{inspect(ctx.module)}")
    end
  end

  # ---- bindings ---------------------------------------------------------------------------------

  defp read({:value, code, type, uni}), do: scalar(code, type, uni)

  defp read({:tuple, parts}) do
    values = Enum.map(parts, &read/1)

    %{
      code: Enum.flat_map(values, & &1.code),
      types: Enum.flat_map(values, & &1.types),
      uni: Enum.flat_map(values, & &1.uni),
      tuple: true
    }
  end

  # Stores a value into fresh locals: {binding, state, code that stores it}. A local set inside a
  # branch does not count as the same for every element (the engine's rule for loop bounds).
  defp bind_value(v, ctx, st) do
    {slots, st} = Enum.map_reduce(v.types, st, fn _, st -> fresh(st) end)
    stores = slots |> Enum.reverse() |> Enum.map(&{:local_set, &1})

    bindings =
      [slots, v.types, v.uni]
      |> Enum.zip()
      |> Enum.map(fn {slot, type, uni} -> {:value, [{:local_get, slot}], type, uni and not ctx.in_branch} end)

    binding = if v.tuple, do: {:tuple, bindings}, else: hd(bindings)
    {binding, st, v.code ++ stores}
  end

  # A pattern of a match, a kernel's parameter or an accumulator: a variable, _ or a tuple of those.
  defp bind_pattern({:_, _, atom}, _binding, ctx) when is_atom(atom), do: ctx

  defp bind_pattern({name, _, atom}, binding, ctx) when is_atom(name) and is_atom(atom),
    do: %{ctx | vars: Map.put(ctx.vars, {name, atom}, binding)}

  defp bind_pattern(pattern, {:tuple, parts}, ctx) when is_tuple(pattern) do
    elems = tuple_elems(pattern)

    if elems == nil or length(elems) != length(parts),
      do:
        error!(
          pattern,
          ctx,
          "the pattern #{show(pattern)} does not match a tuple of #{length(parts)} elements"
        )

    elems |> Enum.zip(parts) |> Enum.reduce(ctx, fn {p, b}, ctx -> bind_pattern(p, b, ctx) end)
  end

  defp bind_pattern(pattern, _binding, ctx) do
    error!(
      pattern,
      ctx,
      "a kernel matches only variables, _ and tuples of them (#{show(pattern)}); " <>
        "compare with == or use case for other patterns"
    )
  end

  defp tuple_elems({:{}, _, elems}), do: elems
  defp tuple_elems({a, b}), do: [a, b]
  defp tuple_elems(_), do: nil

  # A block's expressions in order: matches bind (a fresh local each), other expressions are
  # computed (where they fault, Elixir would too) and dropped into a local of their own (the
  # engine has no pop); the last one is the value.
  defp block(exprs, ctx, st) do
    {init, [last]} = Enum.split(exprs, -1)

    {code, ctx, st} =
      Enum.reduce(init, {[], ctx, st}, fn expr, {code, ctx, st} ->
        ctx = at(expr, ctx)

        case expr do
          {:=, _, [pattern, value]} ->
            {v, st} = compile(value, ctx, st)
            check_pattern!(pattern, v, ctx)
            {binding, st, store} = bind_value(v, ctx, st)
            {code ++ store, bind_pattern(pattern, binding, ctx), st}

          _ ->
            {v, st} = compile(expr, ctx, st)
            {_, st, store} = bind_value(v, ctx, st)
            {code ++ store, ctx, st}
        end
      end)

    ctx = at(last, ctx)

    {v, st} =
      case last do
        {:=, _, [pattern, value]} ->
          {v, st} = compile(value, ctx, st)
          check_pattern!(pattern, v, ctx)
          {v, st}

        _ ->
          compile(last, ctx, st)
      end

    {%{v | code: code ++ v.code}, st}
  end

  defp check_pattern!({name, _, atom}, _v, _ctx) when is_atom(name) and is_atom(atom), do: :ok

  defp check_pattern!(pattern, v, ctx) do
    case tuple_elems(pattern) do
      nil -> bind_pattern(pattern, nil, ctx)
      elems when v.tuple and length(elems) == length(v.types) -> :ok
      _ -> error!(pattern, ctx, "the pattern #{show(pattern)} does not match the value's shape (#{shape(v)})")
    end
  end

  defp shape(%{tuple: false, types: [t]}), do: to_string(t)
  defp shape(%{types: types}), do: "a tuple of #{length(types)}: #{Enum.join(types, ", ")}"

  # ---- branches ---------------------------------------------------------------------------------

  defp branch_ctx(ctx), do: %{ctx | in_branch: true}

  defp fail(reason), do: %{code: [{:fail, Ops.fail_reason!(reason)}], types: [:any], uni: [true], tuple: :any}

  # <cond> if_then <yes> if_else <no> if_end, for values of one shape. A branch leaves one value:
  # a tuple's first component; each branch stores the others into locals of its own, which the
  # condition then selects again after the branch. (No local is written by both branches, so the
  # selection is right whether or not a branch not taken writes its locals.)
  defp branch(condition, yes, no, ast, ctx, st) do
    {types, tuple} = unify!(yes, no, ast, ctx)
    uni = uniform?(condition) and uniform?(yes) and uniform?(no)

    case types do
      [type] ->
        {scalar(
           condition.code ++ [{:if_then}] ++ yes.code ++ [{:if_else}] ++ no.code ++ [{:if_end}],
           type,
           uni
         ), st}

      [_ | rest] ->
        {c_binding, st, c_store} = reusable_binding(condition, ctx, st)
        c_read = read(c_binding).code
        {yes_slots, st} = Enum.map_reduce(rest, st, fn _, st -> fresh(st) end)
        {no_slots, st} = Enum.map_reduce(rest, st, fn _, st -> fresh(st) end)
        stores = fn slots -> slots |> Enum.reverse() |> Enum.map(&{:local_set, &1}) end
        # A side that fails still sets its locals (with placeholders), so that none is read unset.
        placeholders = Enum.map(rest, fn t -> if t == :boolean, do: {:boolean, 0}, else: {:literal, 0} end)

        side = fn
          %{tuple: :any} = v, slots -> v.code ++ placeholders ++ stores.(slots)
          v, slots -> v.code ++ stores.(slots)
        end

        others =
          Enum.zip_with(yes_slots, no_slots, fn y, n ->
            c_read ++ [{:if_then}, {:local_get, y}, {:if_else}, {:local_get, n}, {:if_end}]
          end)

        code =
          c_store ++
            c_read ++
            [{:if_then}] ++
            side.(yes, yes_slots) ++
            [{:if_else}] ++ side.(no, no_slots) ++ [{:if_end}] ++ List.flatten(others)

        {%{code: code, types: types, uni: Enum.map(types, fn _ -> uni end), tuple: tuple}, st}
    end
  end

  defp unify!(%{tuple: :any}, no, _ast, _ctx), do: {no.types, no.tuple}
  defp unify!(yes, %{tuple: :any}, _ast, _ctx), do: {yes.types, yes.tuple}

  defp unify!(yes, no, ast, ctx) do
    if yes.tuple != no.tuple or yes.types != no.types do
      error!(
        ast,
        ctx,
        "the branches of #{show_head(ast)} must have one shape (both integers, both " <>
          "booleans, or tuples alike), and they are #{shape(yes)} and #{shape(no)}"
      )
    end

    {yes.types, yes.tuple}
  end

  defp show_head({name, _, _}) when name in [:if, :unless, :cond, :case], do: to_string(name)
  defp show_head(ast), do: show(ast)

  defp if_(op, condition, clauses, ast, ctx, st) do
    keys = Keyword.keys(clauses)

    unless Enum.sort(keys) == [:do, :else] do
      error!(
        ast,
        ctx,
        "a kernel's #{op} needs both do: and else: (every element needs a value); " <>
          "add an else branch"
      )
    end

    {yes, no} = if op == :if, do: {clauses[:do], clauses[:else]}, else: {clauses[:else], clauses[:do]}
    {vc, st} = bool!(condition, "#{op}'s condition", ctx, st)
    {vy, st} = compile(yes, branch_ctx(ctx), st)
    {vn, st} = compile(no, branch_ctx(ctx), st)
    branch(vc, vy, vn, ast, ctx, st)
  end

  defp cond_(clauses, ast, ctx, st) do
    {compiled, st} =
      clauses
      |> Enum.with_index()
      |> Enum.map_reduce(st, fn
        {{:->, meta, [[condition], body]}, i}, st ->
          inner = at({:->, meta, []}, if(i == 0, do: ctx, else: branch_ctx(ctx)))

          if condition == true do
            {vb, st} = compile(body, branch_ctx(ctx), st)
            {{:always, vb}, st}
          else
            {vc, st} = bool!(condition, "cond's condition", at(condition, inner), st)
            {vb, st} = compile(body, branch_ctx(ctx), st)
            {{vc, vb}, st}
          end

        {clause, _}, _st ->
          error!(clause, ctx, "a cond clause is `condition -> value`")
      end)

    chain(compiled, :no_cond_clause, ast, ctx, st)
  end

  # Clauses tried in order: the first whose condition holds gives the value; a clause that always
  # matches ends the chain, and without one the element fails as Elixir raises.
  defp chain(clauses, reason, ast, ctx, st) do
    {until_always, rest} = Enum.split_while(clauses, &(not match?({:always, _}, &1)))

    last =
      case rest do
        [{:always, v} | _] -> v
        [] -> fail(reason)
      end

    until_always
    |> Enum.reverse()
    |> Enum.reduce({last, st}, fn {vc, vb}, {acc, st} -> branch(vc, vb, acc, ast, ctx, st) end)
  end

  defp case_(subject, clauses, ast, ctx, st) do
    {vs, st} = compile(subject, ctx, st)
    if vs.tuple, do: error!(subject, ctx, "a kernel's case takes an integer or a boolean, not a tuple")
    [type] = vs.types

    {binding, st, prefix} =
      if simple?(vs), do: {{:value, vs.code, type, hd(vs.uni)}, st, []}, else: bind_value(vs, ctx, st)

    {compiled, st} =
      clauses
      |> Enum.with_index()
      |> Enum.map_reduce(st, fn
        {{:->, meta, [[clause_head], body]}, i}, st ->
          inner = if i == 0, do: ctx, else: branch_ctx(ctx)
          {pattern, guard} = split_guard(clause_head)
          ctx_clause = at(clause_head, at({:->, meta, []}, inner))
          {test, clause_ctx} = case_pattern(pattern, binding, type, ctx_clause)
          {test, st} = add_guard(test, guard, clause_ctx, st)
          {vb, st} = compile(body, branch_ctx(clause_ctx), st)
          {{test || :always, vb}, st}

        {clause, _}, _st ->
          error!(clause, ctx, "a case clause is `pattern -> value`")
      end)

    {v, st} = chain(compiled, :no_case_clause, ast, ctx, st)
    {%{v | code: prefix ++ v.code}, st}
  end

  defp split_guard({:when, _, [pattern, guard]}), do: {pattern, unnest_when(guard)}
  defp split_guard(pattern), do: {pattern, nil}

  # `x when a when b` is either guard.
  defp unnest_when({:when, meta, [a, b]}), do: {:or, meta, [a, unnest_when(b)]}
  defp unnest_when(guard), do: guard

  # The test of one pattern against the subject (nil: it always matches) and the context it binds.
  defp case_pattern({:_, _, atom}, _binding, _type, ctx) when is_atom(atom), do: {nil, ctx}

  defp case_pattern({name, _, atom} = p, binding, _type, ctx) when is_atom(name) and is_atom(atom),
    do: {nil, bind_pattern(p, binding, ctx)}

  defp case_pattern(pattern, binding, type, ctx) do
    value =
      case pattern do
        n when is_integer(n) -> {:s64, n}
        b when is_boolean(b) -> {:boolean, b}
        {:-, _, [n]} when is_integer(n) -> {:s64, -n}
        {:@, _, [{_, _, atom}]} = a when is_atom(atom) -> {:s64, attribute(a, ctx)}
        _ -> nil
      end

    case value do
      {:s64, n} when is_integer(n) and type == :s64 ->
        literal!(n, pattern, ctx)
        {scalar(read(binding).code ++ [{:literal, n}, {:eq}], :boolean, elem(binding, 3)), ctx}

      {:boolean, b} when type == :boolean ->
        test = if b, do: read(binding).code, else: read(binding).code ++ [{:logical_not}]
        {scalar(test, :boolean, elem(binding, 3)), ctx}

      _ ->
        error!(
          pattern,
          ctx,
          "a kernel's case matches integer literals, true/false (on a boolean), " <>
            "variables and _ (with guards), and #{show(pattern)} is not one of those for #{type_name(type)}"
        )
    end
  end

  defp add_guard(test, nil, _ctx, st), do: {test, st}

  defp add_guard(test, guard, ctx, st) do
    guard_safe!(guard, ctx)
    {vg, st} = bool!(guard, "a guard", at(guard, branch_ctx(ctx)), st)

    case test do
      nil -> {vg, st}
      _ -> branch(test, vg, scalar([{:boolean, 0}], :boolean, true), guard, ctx, st)
    end
  end

  # Elixir treats a guard that raises as one that fails; the engine's faults cannot be caught, so
  # guards may not divide by what might be zero or raise to a power.
  defp guard_safe!(guard, ctx) do
    Macro.prewalk(guard, fn
      {op, _, [_, d]} = ast when op in [:div, :rem] ->
        unless is_integer(d) and d != 0 do
          error!(
            ast,
            ctx,
            "#{show(ast)} in a guard: Elixir treats a division by zero in a guard as " <>
              "a failed match, which a kernel cannot; divide in the clause's body, or test the divisor first"
          )
        end

        ast

      {op, _, [_, _]} = ast when op in [:**, :pow] ->
        error!(ast, ctx, "#{show(ast)} in a guard: compute the power in the clause's body")

      other ->
        other
    end)
  end

  # ---- loops ------------------------------------------------------------------------------------

  defp reduce(range, init, fun, _ast, ctx, st) do
    {index_pattern, acc_pattern, body} =
      case fun do
        {:fn, _, [{:->, _, [[i, acc], body]}]} ->
          {i, acc, body}

        _ ->
          error!(
            fun,
            ctx,
            "a kernel's Enum.reduce takes `fn i, acc -> ... end` (one clause, no guard), got #{show(fun)}"
          )
      end

    {bounds_code, st} = bounds(range, ctx, st)

    {vi, st} = compile(init, ctx, st)
    if vi.types == [:any], do: error!(init, ctx, "the accumulator's initial value never completes")
    {acc_binding, st, init_code} = bind_value(vi, ctx, st)
    slots = slots(acc_binding)
    {loop_slot, st} = fresh(st)

    loop_ctx = %{ctx | vars: ctx.vars}
    loop_ctx = bind_loop_index(index_pattern, loop_slot, loop_ctx)
    check_acc_pattern!(acc_pattern, vi, ctx)

    # The accumulator counts as the same for every element only where its start and every step
    # keep it so: compile the body assuming that, and again with less until it holds.
    {vb, acc_binding, st} = loop_body(body, acc_pattern, acc_binding, vi, loop_ctx, st)

    stores = slots |> Enum.reverse() |> Enum.map(&{:local_set, &1})
    code = init_code ++ bounds_code ++ [{:loop_begin, loop_slot}] ++ vb.code ++ stores ++ [{:loop_end}]
    result = read(acc_binding)
    {%{result | code: code ++ result.code}, st}
  end

  defp loop_body(body, acc_pattern, acc_binding, vi, ctx, st) do
    ctx1 = bind_pattern(acc_pattern, acc_binding, ctx)
    {vb, st1} = compile(body, ctx1, st)

    if vb.tuple != vi.tuple or (vb.types != vi.types and vb.types != [:any]) do
      error!(
        body,
        ctx,
        "Enum.reduce's accumulator must keep its shape: it starts as #{shape(vi)} and " <>
          "the function returns #{shape(vb)}"
      )
    end

    uni = Enum.zip_with(binding_uni(acc_binding), vb.uni, &(&1 and &2))

    if uni == binding_uni(acc_binding) do
      {vb, acc_binding, st1}
    else
      loop_body(body, acc_pattern, with_uni(acc_binding, uni), vi, ctx, st)
    end
  end

  defp slots({:value, [{:local_get, slot}], _, _}), do: [slot]
  defp slots({:tuple, parts}), do: Enum.flat_map(parts, &slots/1)

  defp binding_uni({:value, _, _, uni}), do: [uni]
  defp binding_uni({:tuple, parts}), do: Enum.flat_map(parts, &binding_uni/1)

  defp with_uni({:value, code, type, _}, [uni]), do: {:value, code, type, uni}

  defp with_uni({:tuple, parts}, uni),
    do: {:tuple, parts |> Enum.zip(uni) |> Enum.map(fn {p, u} -> with_uni(p, [u]) end)}

  defp check_acc_pattern!({name, _, atom}, _vi, _ctx) when is_atom(name) and is_atom(atom), do: :ok

  defp check_acc_pattern!(pattern, vi, ctx) do
    elems = tuple_elems(pattern)

    unless elems != nil and vi.tuple and length(elems) == length(vi.types) do
      error!(
        pattern,
        ctx,
        "the accumulator pattern #{show(pattern)} must be a variable, or a tuple " <>
          "of variables the size of the initial value (#{shape(vi)})"
      )
    end
  end

  defp bind_loop_index(pattern, slot, ctx) do
    case pattern do
      {name, _, atom} when is_atom(name) and is_atom(atom) ->
        bind_pattern(pattern, {:value, [{:local_get, slot}], :s64, not ctx.in_branch}, ctx)

      _ ->
        error!(
          pattern,
          ctx,
          "Enum.reduce's function takes the range's value as a variable or _, got #{show(pattern)}"
        )
    end
  end

  # <first> <last> <step>: the same for every element, else a CompileError.
  defp bounds({:@, _, _} = ast, ctx, st) do
    case attribute(ast, ctx) do
      %Range{} = r -> bounds(r, ctx, st)
      other -> error!(ast, ctx, "#{show(ast)} is #{inspect(other, limit: 5)}, not a range")
    end
  end

  defp bounds(%Range{first: a, last: b, step: s} = r, ctx, st) do
    for n <- [a, b, s], do: literal!(n, r, ctx)
    {[{:literal, a}, {:literal, b}, {:literal, s}], st}
  end

  defp bounds({:"..//", _, [a, b, s]} = ast, ctx, st) do
    {va, st} = bound!(a, ast, ctx, st)
    {vb, st} = bound!(b, ast, ctx, st)
    {vs, st} = bound!(s, ast, ctx, st)

    if literal_value(vs) == {:ok, 0},
      do: error!(ast, ctx, "#{show(ast)} has step 0, for which Elixir raises ArgumentError")

    {va.code ++ vb.code ++ vs.code, st}
  end

  # Without a step, first..last counts down when first > last (Elixir 1.14): the step is computed.
  defp bounds({:.., _, [a, b]} = ast, ctx, st) do
    {va, st} = bound!(a, ast, ctx, st)
    {vb, st} = bound!(b, ast, ctx, st)

    case {literal_value(va), literal_value(vb)} do
      {{:ok, x}, {:ok, y}} ->
        {va.code ++ vb.code ++ [{:literal, if(x <= y, do: 1, else: -1)}], st}

      _ ->
        {ra, st, sa} = reusable(va, ctx, st)
        {rb, st, sb} = reusable(vb, ctx, st)
        step = ra ++ rb ++ [{:le}, {:if_then}, {:literal, 1}, {:if_else}, {:literal, -1}, {:if_end}]
        {sa ++ sb ++ ra ++ rb ++ step, st}
    end
  end

  defp bounds(ast, ctx, _st) do
    error!(
      ast,
      ctx,
      "a kernel's Enum.reduce runs over a range written first..last or " <>
        "first..last//step (or a module attribute holding one), got #{show(ast)}"
    )
  end

  defp bound!(ast, range, ctx, st) do
    {v, st} = int!(ast, range, ctx, st)

    unless uniform?(v) do
      error!(
        ast,
        ctx,
        "the range #{show(range)} depends on the element (#{show(ast)}): a loop's bounds " <>
          "must be the same for every element; use literals, arguments, module attributes and " <>
          "variables bound from them (not index(), nor values bound inside a branch)"
      )
    end

    {v, st}
  end

  # A binding of the value (itself, when it only reads) and the code that stores it.
  defp reusable_binding(v, ctx, st) do
    if simple?(v),
      do: {{:value, v.code, hd(v.types), hd(v.uni)}, st, []},
      else: bind_value(v, ctx, st)
  end

  # Code that reads the value again (itself, when it only reads), and the code that stores it.
  defp reusable(v, ctx, st) do
    if simple?(v) do
      {v.code, st, []}
    else
      {binding, st, store} = bind_value(v, ctx, st)
      {read(binding).code, st, store}
    end
  end

  # ---- calls to kernels -------------------------------------------------------------------------

  defp remote(module, name, args, ast, ctx, st) do
    arity = length(args)

    definition =
      cond do
        module == ctx.module ->
          with {:ok, d} <- lookup(module, name, arity), do: d, else: (_ -> nil)

        match?({:module, _}, Code.ensure_compiled(module)) ->
          with {:ok, %{public: true} = d} <- lookup(module, name, arity), do: d, else: (_ -> nil)

        true ->
          nil
      end

    if definition == nil do
      error!(
        ast,
        ctx,
        "#{show(ast)} is not supported in a kernel: #{inspect(module)}.#{name}/#{arity} " <>
          "is not a kernel defined with defkernel (a kernel calls the operators and functions listed " <>
          "in Kiln.Kernel, and other kernels)"
      )
    end

    inline(definition, args, ast, ctx, st)
  end

  @doc false
  # The definition of kernel name/arity of `module`: its registry while it compiles, else its
  # __kiln_kernel__/1.
  def lookup(module, name, arity) do
    found =
      cond do
        Module.open?(module) -> Map.get(Module.get_attribute(module, :kiln_kernels) || %{}, {name, arity})
        function_exported?(module, :__kiln_kernel__, 1) -> module.__kiln_kernel__({name, arity})
        true -> nil
      end

    if found, do: {:ok, found}, else: :error
  end

  @doc """
  The body as the compiler reads it: aliases (and __MODULE__) expanded, so that it compiles alike
  wherever it is inlined, this module or another.
  """
  def prepare(body, env) do
    Macro.prewalk(body, fn
      {:__aliases__, _, _} = alias -> Macro.expand(alias, env)
      {:__MODULE__, _, atom} when is_atom(atom) -> env.module
      other -> other
    end)
  end

  @doc "Module attributes that are integers or ranges replaced by their values (as the module body runs)."
  def resolve_attributes(body, module) do
    Macro.prewalk(body, fn
      {:@, _, [{name, _, atom}]} = ast when is_atom(name) and is_atom(atom) ->
        case Module.get_attribute(module, name) do
          n when is_integer(n) -> n
          %Range{} = r -> r
          _ -> ast
        end

      other ->
        other
    end)
  end

  # A call is inlined: each argument is computed once (into a local unless it only reads), then
  # the callee's body is compiled with its parameters bound to them, where it was written.
  defp inline(definition, args, ast, ctx, st) do
    unless definition.ready do
      error!(
        ast,
        ctx,
        "#{show(ast)} calls a kernel defined after this one (or this one itself); " <>
          "kernels are inlined, so define the callee first (and no kernel can call itself)"
      )
    end

    {bindings, code, st} =
      Enum.reduce(args, {[], [], st}, fn arg, {bindings, code, st} ->
        {v, st} = compile(arg, ctx, st)

        if simple?(v) do
          {[{:value, v.code, hd(v.types), hd(v.uni)} | bindings], code, st}
        else
          {binding, st, store} = bind_value(v, ctx, st)
          {[binding | bindings], code ++ store, st}
        end
      end)

    vars = definition.params |> Enum.zip(Enum.reverse(bindings)) |> Map.new()
    inner = %{ctx | vars: vars, module: definition.module, file: definition.file, line: definition.line}
    {v, st} = compile(definition.body, inner, st)
    {%{v | code: code ++ v.code}, st}
  end

  # ---- errors -----------------------------------------------------------------------------------

  defp show(ast), do: Macro.to_string(ast)

  @doc false
  def error!(ast, ctx, message) do
    line =
      case ast do
        {_, meta, _} when is_list(meta) -> Keyword.get(meta, :line, ctx.line)
        _ -> ctx.line
      end

    raise CompileError, file: ctx.file, line: line, description: message
  end
end
