# cmake -DROOT=<repo> -P check_platform_split.cmake
#
# The platform split of harness/src and probes/ (see ARCHITECTURE.md):
#  - a portable file tests no platform macro. The platform files are those in
#    a folder named unix/ or win/ (harness/src/unix, probes/win, ...) and,
#    in probes/pyext/, those named *_unix.c or *_win.c; every other .c or .h
#    in harness/src/ and probes/ (probes/pyext/ included) is portable;
#  - no function is defined in both harness/src/unix/ and harness/src/win/
#    unless a header declares it as part of the platform interface
#    (harness/src/os.h or harness/include/sigprobe/*.h): a static helper
#    written twice is logic that belongs in a portable file.
# Prints one line per breach and fails if there is any.
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<repo> -P check_platform_split.cmake")
endif()
set(bad 0)

file(GLOB_RECURSE sources RELATIVE ${ROOT} ${ROOT}/harness/src/*.c ${ROOT}/harness/src/*.h
     ${ROOT}/probes/*.c ${ROOT}/probes/*.h)
set(portable "")
foreach(rel ${sources})
  if(NOT rel MATCHES "/(unix|win)/" AND NOT rel MATCHES "_(unix|win)\\.c$")
    list(APPEND portable ${ROOT}/${rel})
  endif()
endforeach()
list(LENGTH portable n_portable)
foreach(f ${portable})
  file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*(if|ifdef|ifndef|elif).*(_WIN32|_WIN64|WIN32|__linux__|__APPLE__|__unix__|_MSC_VER|__MINGW)")
  foreach(l ${lines})
    file(RELATIVE_PATH rel ${ROOT} ${f})
    message("${rel}: tests the platform in a portable file: ${l}")
    math(EXPR bad "${bad} + 1")
  endforeach()
endforeach()

# Names the headers declare: the primitives and the public interface.
set(declared "")
file(GLOB headers ${ROOT}/harness/src/os.h ${ROOT}/harness/include/sigprobe/*.h)
foreach(h ${headers})
  file(READ ${h} text)
  string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*\\(" calls "${text}")
  foreach(c ${calls})
    string(REPLACE "(" "" c "${c}")
    list(APPEND declared ${c})
  endforeach()
endforeach()

# Function definitions: a line at column 0 with a name and "(", not a
# declaration (no ";" at its end), not a preprocessor line.
function(defined_in dir out)
  set(names "")
  file(GLOB files ${ROOT}/harness/src/${dir}/*.c)
  foreach(f ${files})
    file(STRINGS ${f} lines REGEX "^[A-Za-z_][A-Za-z0-9_ \\*]*[ \\*]([A-Za-z_][A-Za-z0-9_]*)\\(")
    foreach(l ${lines})
      if(l MATCHES ";[ \t]*$" OR l MATCHES "^(typedef|return|else|static const|const struct|extern) ")
        continue()
      endif()
      string(REGEX MATCH "([A-Za-z_][A-Za-z0-9_]*)\\(" m "${l}")
      string(REPLACE "(" "" m "${m}")
      list(APPEND names ${m})
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES names)
  set(${out} ${names} PARENT_SCOPE)
endfunction()
defined_in(unix unix_names)
defined_in(win win_names)
foreach(n ${unix_names})
  list(FIND win_names ${n} in_win)
  list(FIND declared ${n} in_headers)
  if(in_win GREATER -1 AND in_headers EQUAL -1)
    message("harness/src/unix and harness/src/win both define ${n}(), which no header declares as a primitive")
    math(EXPR bad "${bad} + 1")
  endif()
endforeach()

if(bad GREATER 0)
  message(FATAL_ERROR "${bad} breach(es) of the platform split")
endif()
list(LENGTH unix_names nu)
list(LENGTH win_names nw)
message("platform split: ${n_portable} portable files test no platform; ${nu} functions in harness/src/unix/, ${nw} in harness/src/win/, none written twice")
