# Formatter settings for Kiln's Elixir sources and tests; projects that import Kiln.Kernel can
# import_deps this one for defkernel without parentheses.
[
  inputs: ["{mix,.formatter}.exs", "{lib,test}/**/*.{ex,exs}"],
  line_length: 110,
  locals_without_parens: [defkernel: 2, defkernelp: 2],
  export: [locals_without_parens: [defkernel: 2, defkernelp: 2]]
]
