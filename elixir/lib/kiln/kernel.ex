# Kernels written in Elixir: defkernel compiles a function of arrays and scalars into the engine's kernel format.
defmodule Kiln.Kernel do
  @moduledoc """
  Kernels written in Elixir: `defkernel` takes a function of arrays and scalars written in a
  subset of Elixir, checks at compile time that Kiln can run it exactly as Elixir would, compiles
  it into the engine's kernel format (`include/kiln/kernel.hpp`) and defines functions that apply
  it to every element of the arrays, on every core or on a GPU.

      defmodule MyKernels do
        import Kiln.Kernel

        defkernel logistic(x, p, mu), do: rem(mu * x * (x + 1), p)

        @doc "x * y + c, and its sign."
        defkernel fma_sign(x, y, c) do
          v = x * y + c
          {v, cond do
            v > 0 -> 1
            v < 0 -> -1
            true -> 0
          end}
        end
      end

      MyKernels.logistic(1..3, 61, 22, iterations: 10)   #=> [28, 25, 37]
      MyKernels.fma_sign([1, 2, 3], [-5, 0, 5], 1)       #=> {[-4, 1, 16], [-1, 1, 1]}

  ## Arguments and results

  `defkernel name(a, b, ...)` defines:

    * `name(a, b, ..., opts \\\\ [])`, which runs the kernel on the engine. Each argument is bound
      per call to an array (a list of integers, a `Range`, or a binary of native-endian int64, as
      `Kiln.Binary` makes) or to an integer (a scalar: every element sees it). At least one
      argument must be an array, and all arrays must have one length. Element `i` of the result
      is the kernel's value for element `i` of every array. The result has the shape of the
      first array argument (a list for lists and ranges, a binary for binaries); a kernel whose
      value is a tuple `{a, b}` has two outputs, and the call returns a tuple of two results.
    * `name_stats(a, b, ..., opts \\\\ [])`: `{result, stats}`, with the engine's stats (as
      `Kiln.LogisticMap.run_stats/4`: `:backend` and `:device` say where it ran).
    * `name_element(a, b, ...)`: the same code as plain Elixir, on integers: the definition the
      engine is checked against. A kernel that uses `index()` takes the index as an extra last
      argument: `name_element(a, b, ..., index)`.

  `@doc` before `defkernel` documents `name/n`. `defkernelp` defines a private kernel: a helper
  that other kernels of the module call (it is inlined into them), with a private
  `name_element`. A kernel may also call the public kernels of other modules (`Other.kernel(x)`),
  compiled before it.

  ## What a kernel may contain

  | Construct | Notes |
  |-----------|-------|
  | integer literals, `true`, `false` | integers must fit in int64 |
  | the arguments, `index()` | `index()` is the element's index, from 0 |
  | `+ - * div rem abs min max` | Elixir's: `div` truncates, `rem` takes the dividend's sign |
  | `== != === !== < <= > >=` | on integers; give booleans |
  | `not and or ! && \\|\\|` | on booleans; `and`/`or`/`&&`/`\\|\\|` short-circuit |
  | `if`/`unless` | with both `do` and `else` |
  | `cond` | no true clause: the element fails (Elixir's `CondClauseError`) |
  | `case` | patterns: integer literals, `true`/`false`, variables, `_`, with guards; no match fails |
  | `band bor bxor bnot bsl bsr`, `&&& \\|\\|\\| ^^^ ~~~ <<< >>>` | `import Bitwise` as in Elixir |
  | `Integer.pow/2`, `**` | exponent >= 0 (else `ArithmeticError`) |
  | `x = expr` in a block, `{a, b} = expr` | rebinding too; bindings inside a branch stay there |
  | `\\|>` | pipes into any of these, or into kernels |
  | `@attr` | a module attribute that is an integer (a range for loops), read at compile time |
  | `other_kernel(args)`, `Module.kernel(args)` | kernels defined before, inlined |
  | `Enum.reduce(first..last, acc, fn i, acc -> ... end)` | also `first..last//step`; bounds from literals, arguments and attributes |
  | tuples `{a, b}` | as a kernel's value (several outputs), accumulators, bindings, branch values; `elem(t, i)` |

  `Kernel.`- and `Bitwise.`-qualified forms work too. Every value is an integer or a boolean
  (or a tuple of them), as Elixir would have it: conditions and `not`/`and`/`or` take booleans,
  arithmetic takes integers, and a kernel's value is an integer or a tuple of integers. Only the
  branch taken is evaluated, so `if x == 0, do: 0, else: div(1000, x)` never divides by zero.

  A loop's bounds must be the same for every element: they may use literals, arguments,
  attributes and variables bound from them, but not `index()` or anything bound from an array
  element (where such an argument is an array at the call, the engine refuses the run with an
  `ArgumentError`). `a..b` without a step counts down when `a > b`, as in Elixir 1.14.

      defkernel iterate(x, p, mu, k), do: Enum.reduce(1..k//1, x, fn _, x -> rem(mu * x * (x + 1), p) end)

      # Fibonacci from each element pair (a, b), n steps (n a scalar at the call)
      defkernel fib(a, b, n) do
        {a, _} = Enum.reduce(1..n//1, {a, b}, fn _, {a, b} -> {b, a + b} end)
        a
      end

  ## Results and faults

  Results are exactly Elixir's wherever every intermediate value fits in int64. Where one does
  not, Elixir goes on with a big integer and Kiln cannot: the call raises `ArgumentError` naming
  the first such element. A zero divisor or a negative exponent raises `ArithmeticError`, as
  Elixir does; a `cond` without a true clause or a `case` without a matching clause also raises
  `ArithmeticError` (where Elixir raises `CondClauseError` / `CaseClauseError`), naming the
  element. Guards may not divide by anything but a non-zero literal, nor raise to a power: Elixir
  treats a guard that raises as a failed match, which the engine cannot.

  ## Compile errors

  Whatever a kernel cannot run is a `CompileError` at the offending expression's file and line,
  saying what is not supported and what to write instead: a construct outside the table, a
  boolean in arithmetic or an integer as a condition, an `if` without `else`, a literal beyond
  int64, a negative literal exponent, unknown variables or functions, loop bounds that depend on
  the element, an accumulator that changes shape, and a kernel beyond the engine's limits (stack
  depth, nesting, locals, arguments and outputs of `include/kiln/kernel.hpp`, or more than 4096
  words of code). For example:

      defkernel bad(x), do: if(x, do: 1, else: 0)
      # ** (CompileError) lib/my_kernels.ex:4: x is an integer where if's condition needs a boolean

      defkernel ratio(x), do: x / 2
      # ** (CompileError) lib/my_kernels.ex:5: x / 2 is not supported in a kernel (/ gives a
      #    float: use div/2): ...

  Note that Elixir's `**` gives a float for a negative exponent where a kernel (like
  `Integer.pow/2`) raises `ArithmeticError`.

  ## Options

    * `:iterations` - times the kernel is applied to each element, its result becoming the next
      application's array (default `1`); only for kernels of one array argument and one output.
    * `:backend` - `:cpu` (every core) or `:scalar` (one thread), where kernels are interpreted
      a block of elements at a time; `:cuda`, which compiles the kernel into CUDA C with NVRTC
      and streams the data through the GPU as `Kiln.LogisticMap` does; `:opencl`, which compiles
      it into OpenCL C for the device; or `:auto` (default): a GPU that compiles kernels (CUDA
      first) for large inputs, else `:cpu`. The GPU backends stream kernels of one array
      argument (and any scalars) and one output through their pipelines; kernels of several
      arrays or outputs run there over `Kiln.Buffer`s, or from host arrays copied to the device
      whole (`:auto` runs those on `:cpu`).
    * `:device` - the device's index (default `0`), or `:all` with `:cuda`: every GPU shares the
      run.
    * `:chunk_size` - GPU backends: at most this many elements a launch (default `0`: the
      backend's own).
    * `:phase_times`, `:host_share` - as for `Kiln.LogisticMap`.
    * `:into` - over buffers: the buffer (a tuple of buffers, one per output) the results are
      written into, in place, instead of new buffers; it may be an argument's buffer, so a chain
      of kernels works without allocating (`K.step(buf, p, into: buf)`). Returns those buffers.
  """

  alias Kiln.Args
  alias Kiln.Kernel.Compiler
  require Kiln.Args

  @doc "Defines a kernel; see the module doc."
  defmacro defkernel(call, body), do: define(:def, call, body, __CALLER__)

  @doc "Defines a private kernel: a helper for the module's other kernels, inlined where called."
  defmacro defkernelp(call, body), do: define(:defp, call, body, __CALLER__)

  @doc "The element's index in the whole array (from 0), inside a kernel."
  defmacro index do
    raise CompileError,
      file: __CALLER__.file,
      line: __CALLER__.line,
      description: "index() is only defined inside defkernel and defkernelp"
  end

  @doc false
  defmacro __before_compile__(env) do
    kernels = Module.get_attribute(env.module, :kiln_kernels) || %{}

    quote do
      @doc false
      def __kiln_kernel__(key), do: Map.get(unquote(Macro.escape(kernels)), key)
    end
  end

  defp define(kind, call, body, env) do
    ctx = %{file: env.file, line: env.line, module: env.module}
    {call, guard} = split_head(call)

    if guard,
      do:
        Compiler.error!(guard, ctx, "a kernel's head takes no guard; test the condition in its body with if")

    body =
      case body do
        [do: body] ->
          body

        _ ->
          Compiler.error!(
            call,
            ctx,
            "#{kind}kernel takes a body: `#{kind}kernel name(args), do: ...` or a do block"
          )
      end

    {name, args} =
      case Macro.decompose_call(call) do
        {name, args} when is_atom(name) ->
          {name, args}

        _ ->
          Compiler.error!(call, ctx, "#{kind}kernel expects name(arguments...), got #{Macro.to_string(call)}")
      end

    ctx = %{ctx | line: line_of(call, env.line)}

    params =
      Enum.map(args, fn
        {var, _, atom} when is_atom(var) and is_atom(atom) ->
          {var, atom}

        other ->
          Compiler.error!(
            other,
            ctx,
            "#{kind}kernel's arguments must be plain variables, got #{Macro.to_string(other)}"
          )
      end)

    if kind == :def and params == [],
      do: Compiler.error!(call, ctx, "defkernel needs at least one argument (an array at the call)")

    if length(Enum.uniq(params)) != length(params),
      do: Compiler.error!(call, ctx, "#{kind}kernel's arguments must differ")

    max_args = Kiln.Kernel.Ops.limit(:args)

    if length(params) > max_args,
      do: Compiler.error!(call, ctx, "a kernel takes at most #{max_args} arguments (kernel_max_args)")

    module = env.module
    registry = Module.get_attribute(module, :kiln_kernels) || %{}
    key = {name, length(params)}

    if Map.has_key?(registry, key),
      do: Compiler.error!(call, ctx, "kernel #{name}/#{length(params)} is already defined")

    unless Module.get_attribute(module, :kiln_kernels) do
      Module.register_attribute(module, :kiln_kernels, [])
      Module.register_attribute(module, :kiln_kernel, [])
      Module.put_attribute(module, :before_compile, Kiln.Kernel)
    end

    # The module body is expanded before it runs: what calls need (parameters, whether index() is
    # read) is registered now, and the kernel is compiled when the module body runs (__register__),
    # once the module attributes before it have their values.
    prepared = Compiler.prepare(body, env)
    uses_index = uses_index?(prepared, module)

    definition = %{
      params: params,
      body: prepared,
      module: module,
      file: env.file,
      line: ctx.line,
      public: kind == :def,
      uses_index: uses_index,
      ready: false
    }

    Module.put_attribute(module, :kiln_kernels, Map.put(registry, key, definition))
    index_var = Macro.var(:index, Kiln.Kernel)
    element_body = element_body(body, env, index_var)
    element_args = if uses_index, do: args ++ [index_var], else: args
    element_name = :"#{name}_element"

    case kind do
      :defp ->
        quote do
          Kiln.Kernel.__register__(__MODULE__, unquote(key))
          defp unquote(element_name)(unquote_splicing(element_args)), do: unquote(element_body)
        end

      :def ->
        quote do
          Kiln.Kernel.__register__(__MODULE__, unquote(key))
          unquote(runtime(name, params, element_name, element_args, element_body))
        end
    end
  end

  @doc false
  # Compiles kernel `key` of `module` as the module body runs: its module attributes read, then
  # (a public kernel) the code, which @kiln_kernel holds for the functions defined next.
  def __register__(module, {name, _} = key) do
    registry = Module.get_attribute(module, :kiln_kernels)
    definition = Map.fetch!(registry, key)
    definition = %{definition | body: Compiler.resolve_attributes(definition.body, module), ready: true}
    ctx = %{file: definition.file, line: definition.line, module: module}

    definition =
      if definition.public do
        compiled = Compiler.compile_kernel(name, definition.params, definition.body, ctx)
        code = for w <- compiled.words, into: <<>>, do: <<w::signed-native-64>>

        Module.put_attribute(
          module,
          :kiln_kernel,
          {code, length(definition.params), compiled.outputs, compiled.locals}
        )

        Map.put(definition, :compiled, compiled)
      else
        definition
      end

    Module.put_attribute(module, :kiln_kernels, Map.put(registry, key, definition))
  end

  defp split_head({:when, _, [call, guard]}), do: {call, guard}
  defp split_head(call), do: {call, nil}

  defp line_of({_, meta, _}, default) when is_list(meta), do: Keyword.get(meta, :line, default)
  defp line_of(_, default), do: default

  # The functions of a public kernel. name/n comes first, so that a @doc written before
  # defkernel is its own.
  defp runtime(name, params, element_name, element_args, element_body) do
    arity = length(params)
    vars = runtime_vars(params)
    names = Enum.map(vars, fn {var, _, _} -> Atom.to_string(var) end)
    stats_name = :"#{name}_stats"
    async_name = :"#{name}_async"

    quote do
      def unquote(name)(unquote_splicing(vars), opts \\ []) do
        {result, _stats} = Kiln.Kernel.__run__(@kiln_kernel, unquote(names), [unquote_splicing(vars)], opts)
        result
      end

      @doc "Like `#{unquote(name)}/#{unquote(arity + 1)}`, returning `{result, stats}`."
      def unquote(stats_name)(unquote_splicing(vars), opts \\ []) do
        Kiln.Kernel.__run__(@kiln_kernel, unquote(names), [unquote_splicing(vars)], opts)
      end

      @doc """
      Starts `#{unquote(name)}/#{unquote(arity + 1)}` and returns a `Kiln.Job` at once;
      `Kiln.await/2` gives its result.
      """
      def unquote(async_name)(unquote_splicing(vars), opts \\ []) do
        Kiln.Kernel.__async__(@kiln_kernel, unquote(names), [unquote_splicing(vars)], opts)
      end

      @doc false
      def unquote(element_name)(unquote_splicing(element_args)), do: unquote(element_body)
    end
  end

  # The runtime functions' own variables, named after the parameters without their leading
  # underscores (a parameter `_i` is not unused there: it goes to the engine).
  defp runtime_vars(params) do
    params
    |> Enum.with_index()
    |> Enum.map_reduce(MapSet.new(["opts"]), fn {{var, _}, k}, taken ->
      name = var |> Atom.to_string() |> String.trim_leading("_")
      name = if name == "" or MapSet.member?(taken, name), do: "arg#{k}", else: name
      {Macro.var(String.to_atom(name), Kiln.Kernel), MapSet.put(taken, name)}
    end)
    |> elem(0)
  end

  # Whether the kernel reads index(), itself or through the kernels it calls.
  defp uses_index?(body, module) do
    {_, found} =
      Macro.prewalk(expand_pipes(body), false, fn
        {:index, _, []} = ast, _ ->
          {ast, true}

        {{:., _, [Kiln.Kernel, :index]}, _, []} = ast, _ ->
          {ast, true}

        {name, _, args} = ast, acc when is_atom(name) and is_list(args) ->
          {ast, acc or callee_uses_index(module, module, name, args)}

        {{:., _, [m, name]}, _, args} = ast, acc when is_atom(m) and is_atom(name) and is_list(args) ->
          {ast, acc or callee_uses_index(module, m, name, args)}

        ast, acc ->
          {ast, acc}
      end)

    found
  end

  defp callee_uses_index(self, module, name, args) do
    if module != self and not match?({:module, _}, Code.ensure_compiled(module)) do
      false
    else
      case Compiler.lookup(module, name, length(args)) do
        {:ok, %{uses_index: true}} -> true
        _ -> false
      end
    end
  end

  defp expand_pipes(ast) do
    Macro.prewalk(ast, fn
      {:|>, _, [left, right]} -> Macro.pipe(left, right, 0)
      other -> other
    end)
  end

  # The body as plain Elixir: index() reads the extra argument, and calls to kernels call their
  # _element functions (with the index where the callee reads it).
  defp element_body(body, env, index_var) do
    module = env.module

    Macro.prewalk(expand_pipes(body), fn
      {:index, _, []} ->
        index_var

      {{:., _, [{:__aliases__, _, [:Kiln, :Kernel]}, :index]}, _, []} ->
        index_var

      {name, meta, args} = ast when is_atom(name) and is_list(args) ->
        case Compiler.lookup(module, name, length(args)) do
          {:ok, d} -> {:"#{name}_element", meta, element_args(args, d, index_var)}
          :error -> ast
        end

      {{:., dot_meta, [alias, name]}, meta, args} = ast when is_atom(name) and is_list(args) ->
        target =
          case alias do
            {:__aliases__, _, _} -> Macro.expand(alias, env)
            {:__MODULE__, _, atom} when is_atom(atom) -> module
            _ -> alias
          end

        with true <- is_atom(target),
             true <- target == module or match?({:module, _}, Code.ensure_compiled(target)),
             {:ok, d} <- Compiler.lookup(target, name, length(args)) do
          {{:., dot_meta, [alias, :"#{name}_element"]}, meta, element_args(args, d, index_var)}
        else
          _ -> ast
        end

      other ->
        other
    end)
  end

  defp element_args(args, %{uses_index: true}, index_var), do: args ++ [index_var]
  defp element_args(args, _, _), do: args

  @run_defaults [
    iterations: 1,
    backend: :auto,
    device: 0,
    chunk_size: 0,
    phase_times: false,
    host_share: true
  ]

  # The options of a kernel's call besides :iterations (default 1 for kernels), in Kiln.Options.
  @run_keys [:backend, :device, :chunk_size, :phase_times, :host_share]

  @doc false
  # Runs a compiled kernel: what the functions defkernel defines call.
  def __run__(descriptor, names, values, opts) do
    {kernel, args, nif_opts, metadata, finish} = prepare(descriptor, names, values, opts)

    Kiln.Telemetry.span(metadata, fn ->
      native(fn -> Kiln.Engine.call(kernel, args, nif_opts) end) |> finish.()
    end)
  end

  @doc false
  # Starts a compiled kernel's run: what name_async calls.
  def __async__(descriptor, names, values, opts) do
    {kernel, args, nif_opts, _metadata, finish} = prepare(descriptor, names, values, opts)

    native(fn ->
      Kiln.Engine.start(kernel, args, nif_opts, fn reply ->
        {result, _stats} = finish.(reply)
        result
      end)
    end)
  end

  defp prepare({code, arity, outputs, locals}, names, values, opts) do
    {into, opts} =
      if is_list(opts) and Keyword.keyword?(opts), do: Keyword.pop(opts, :into), else: {nil, opts}

    opts = Kiln.Options.validate!(opts, @run_defaults |> Keyword.take([:iterations]) |> Kernel.++(@run_keys))
    iterations = opts[:iterations]

    {args, shapes} =
      names
      |> Enum.zip(values)
      |> Enum.map(fn {name, value} -> argument!(name, value) end)
      |> Enum.unzip()

    # Each array's length, beside its shape: the results' size is checked before anything runs.
    lengths = for {_shape, n} <- shapes, do: n

    shapes =
      Enum.map(shapes, fn
        {shape, _n} -> shape
        shape -> shape
      end)

    shape =
      cond do
        Enum.member?(shapes, :buffer) -> :buffer
        Enum.member?(shapes, :list) -> :list
        Enum.member?(shapes, :binary) -> :binary
        true -> nil
      end

    # The first array argument's shape gives the results'; buffers give buffers.
    as_list =
      case Enum.find(shapes, &(&1 != :scalar)) do
        nil ->
          raise ArgumentError,
                "a kernel needs at least one array argument (a list, a Range, a binary of " <>
                  "native-endian int64 or a Kiln.Buffer); #{Enum.join(names, ", ")} are all integers"

        first ->
          first == :list
      end

    arrays = Enum.count(shapes, &(&1 != :scalar))
    n = Enum.max(lengths, fn -> 0 end)

    if shape != :buffer do
      Kiln.Memory.check_result!(as_list, n * max(outputs, 1), fn -> "a kernel run over #{n} elements" end)
    end

    if iterations != 1 and (arrays != 1 or outputs != 1) do
      raise ArgumentError,
            "iterations: applies a kernel of one array argument and one output again to its " <>
              "result; this call has #{arrays} array arguments and the kernel #{outputs} outputs"
    end

    # Over buffers the run goes where they live.
    backend =
      if shape == :buffer,
        do: values |> Enum.find(&is_struct(&1, Kiln.Buffer)) |> Map.fetch!(:backend),
        else: opts[:backend]

    nif_opts = %{
      backend: backend,
      device: Args.device!(opts[:device]),
      chunk_size: opts[:chunk_size],
      phase_times: opts[:phase_times],
      host_share: opts[:host_share],
      as_list: as_list
    }

    nif_opts = if into == nil, do: nif_opts, else: Map.put(nif_opts, :into, into!(into, outputs, shape))

    kernel = {code, arity, outputs, locals, iterations}
    metadata = %{module: __MODULE__, backend: backend, device: opts[:device], n: nil, options: opts}

    finish = fn
      {:ok, results, stats} ->
        results = if shape == :buffer, do: Enum.map(results, &Kiln.Buffer.__wrap__/1), else: results
        {if(outputs == 1, do: hd(results), else: List.to_tuple(results)), stats}

      {:error, reason} ->
        Args.raise_error!(reason)
    end

    {kernel, args, nif_opts, metadata, finish}
  end

  # A reference that is no buffer made by Kiln makes the NIF raise badarg.
  defp native(fun) do
    fun.()
  catch
    :error, :badarg ->
      raise ArgumentError, "a kernel argument is not a buffer made by Kiln.Buffer.upload/2"
  end

  # The buffers of `into:`, one per output, as the NIF takes them.
  defp into!(into, outputs, shape) do
    buffers = if is_tuple(into), do: Tuple.to_list(into), else: [into]

    unless shape == :buffer and length(buffers) == outputs and
             Enum.all?(buffers, &(is_struct(&1, Kiln.Buffer) and is_reference(&1.ref))) do
      raise ArgumentError,
            "into: takes, for a kernel over buffers, one Kiln.Buffer per output (a tuple of " <>
              "#{outputs} for #{outputs} outputs), got #{inspect(into, limit: 5)}"
    end

    Enum.map(buffers, & &1.ref)
  end

  defp argument!(_name, %Kiln.Buffer{ref: ref}) when is_reference(ref), do: {ref, :buffer}

  defp argument!(_name, value) when Args.is_int64(value), do: {value, :scalar}

  defp argument!(name, value) when is_integer(value),
    do: raise(ArgumentError, "parameter #{name} must be an integer that fits in int64, got #{value}")

  defp argument!(name, value) when is_binary(value) and rem(byte_size(value), 8) != 0 do
    raise ArgumentError,
          "parameter #{name} is a binary of #{byte_size(value)} bytes, not a multiple of 8 " <>
            "(an array binary holds native-endian signed 64-bit integers)"
  end

  defp argument!(_name, value) when is_list(value) or is_binary(value) or is_struct(value, Range) do
    {data, as_list, n} = Args.data_n!(value)
    {data, {if(as_list, do: :list, else: :binary), n}}
  end

  # Any other Enumerable of integers (a Stream, say) is listed first, as Kiln.LogisticMap does.
  defp argument!(name, value) when not is_struct(value, Kiln.Buffer) and not is_map(value) do
    if Args.enumerable?(value) do
      {data, true, n} = Args.data_n!(value)
      {data, {:list, n}}
    else
      not_an_argument!(name, value)
    end
  end

  defp argument!(name, value), do: not_an_argument!(name, value)

  defp not_an_argument!(name, value) do
    raise ArgumentError,
          "parameter #{name} must be an integer that fits in int64 or an array (a list of " <>
            "integers, a Range or a binary of native-endian int64), got #{inspect(value, limit: 5)}"
  end
end
