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
  # MinGW-w64's NtCurrentTeb() reads gs:[0x30] through a pointer to that
  # constant address; GCC 12's -Warray-bounds, once optimising (the wheel is
  # a Release build), takes it for an access past an object at address 0
  # (GCC bug 105523) and -Werror fails harness/src/win/probe.c. The param
  # tells it that no page is too small to hold an object; older GCCs lack it.
  if(WIN32)
    check_c_compiler_flag(--param=min-pagesize=0 SP_HAS_MIN_PAGESIZE)
    if(SP_HAS_MIN_PAGESIZE)
      list(APPEND SP_WARNING_FLAGS --param=min-pagesize=0)
    endif()
  endif()
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
