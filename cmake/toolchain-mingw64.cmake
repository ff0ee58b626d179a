# Cross-compiling the Windows side with MinGW-w64 and running it under Wine:
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake
# ctest then runs every add_test(COMMAND target) through wine
# (CMAKE_CROSSCOMPILING_EMULATOR). scripts/wine-build.sh does all of it.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(SP_MINGW_PREFIX x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${SP_MINGW_PREFIX}-gcc)
set(CMAKE_RC_COMPILER ${SP_MINGW_PREFIX}-windres)
set(CMAKE_FIND_ROOT_PATH /usr/${SP_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static runtime: the .exe files need no MinGW DLLs on Wine's path.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc")

# Debian 12 has no wine64 on PATH; `wine` falls back to /usr/lib/wine/wine64.
find_program(SP_WINE NAMES wine64 wine REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${SP_WINE})
