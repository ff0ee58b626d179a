# cython: language_level=3
"""The cysignals subject (`sigprobe check --subject cysignals`): C code that
spins the way cysignals users write an interruptible loop, sig_on() before the
work, sig_check() in its loop, sig_off() after. Built for the interpreter
measured by sigprobe/check/cysignals_ext.py, against that interpreter's
cysignals."""
from cysignals.signals cimport sig_check, sig_off, sig_on
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def spin(double seconds):
    """Spins in C for `seconds` (the GIL held, as sig_on() leaves it); returns
    how many times the loop went round. An interrupt raises KeyboardInterrupt
    from inside the loop when cysignals' handler sees it."""
    cdef double end = _now() + seconds
    cdef unsigned long rounds = 0
    sig_on()
    while _now() < end:
        sig_check()
        rounds += 1
    sig_off()
    return rounds
