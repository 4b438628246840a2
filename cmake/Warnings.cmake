# Warnings for our own targets only (third-party headers are included as SYSTEM).
function(rtcmesh_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
                                           -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false -Wrestrict positives inside libstdc++'s std::string at
    # -O2/-O3 (GCC bug 105651); they are not about our code.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(RTCMESH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
