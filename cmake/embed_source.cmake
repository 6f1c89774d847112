# Concatenates INPUTS into one C++ string constant (kiln::detail::opencl_kernel_source) in OUT.
set(text "")
foreach(f ${INPUTS})
  file(READ ${f} part)
  string(APPEND text "${part}\n")
endforeach()
# Raw string literals cap at 64 KiB on some compilers; the kernel is far below that.
file(WRITE ${OUT} "// Generated from ${INPUTS}; do not edit.\nnamespace kiln::detail {\nextern const char* const opencl_kernel_source;\nconst char* const opencl_kernel_source = R\"kiln_cl(${text})kiln_cl\";\n}\n")
