# Formatter settings for Kiln's Elixir sources and tests.
[
  inputs: ["{mix,.formatter}.exs", "{lib,test}/**/*.{ex,exs}"],
  line_length: 110
]
