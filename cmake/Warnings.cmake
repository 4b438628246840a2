# Warnings for our own targets only (third-party headers are included as SYSTEM).
function(rtcmesh_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
                                           -Wno-missing-field-initializers)
  if(RTCMESH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
