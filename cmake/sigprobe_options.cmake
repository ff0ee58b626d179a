# Warnings on each target, not globally; probed so every compiler gets what it knows.
include(CheckCCompilerFlag)

set(SP_WARNING_FLAGS "")
if(MSVC)
  list(APPEND SP_WARNING_FLAGS /W4)
  if(SIGPROBE_WERROR)
    list(APPEND SP_WARNING_FLAGS /WX)
  endif()
else()
  foreach(flag -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2)
    string(MAKE_C_IDENTIFIER "SP_HAS${flag}" var)
    check_c_compiler_flag(${flag} ${var})
    if(${var})
      list(APPEND SP_WARNING_FLAGS ${flag})
    endif()
  endforeach()
  if(SIGPROBE_WERROR)
    list(APPEND SP_WARNING_FLAGS -Werror)
  endif()
endif()

set(SP_SANITIZE_FLAGS "")
if(SIGPROBE_SANITIZE)
  # float-cast-overflow is not part of "undefined" in GCC: a scaled timeout
  # once overflowed an int that way.
  set(SP_SANITIZE_FLAGS -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined,float-cast-overflow)
endif()

function(sigprobe_options target)
  target_compile_options(${target} PRIVATE ${SP_WARNING_FLAGS} ${SP_SANITIZE_FLAGS})
  if(SP_SANITIZE_FLAGS)
    target_link_options(${target} PRIVATE ${SP_SANITIZE_FLAGS})
  endif()
  if(MSVC)
    # getenv, strerror, fopen, strncat are ISO C; MSVC's /W4 would flag them (C4996).
    target_compile_definitions(${target} PRIVATE _CRT_SECURE_NO_WARNINGS)
  elseif(APPLE)
    target_compile_definitions(${target} PRIVATE _DARWIN_C_SOURCE)
  elseif(NOT WIN32)
    target_compile_definitions(${target} PRIVATE _DEFAULT_SOURCE _XOPEN_SOURCE=700)
  endif()
endfunction()
