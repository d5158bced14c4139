"""The BLAS under the Fortran runtime and the toy GCM: which one, and its threads.

The Python extensions (``emulators._fkb_runtime``, ``gcm_toy._gcm_core``) are
linked against the OpenBLAS that PyPI ships for SciPy (package
``scipy-openblas32``, symbols prefixed ``scipy_``) when the build found it,
else against the system BLAS (see ``meson.options``). :func:`preload` makes
the former loadable wherever the package was built: the extensions import
it before loading themselves.

The Fortran runtime threads itself (OpenMP, :func:`emulators.fkb.set_threads`)
and wants one BLAS thread: :func:`preload` therefore sets scipy-openblas32 to
one thread, unless ``OPENBLAS_NUM_THREADS`` asks for another count. (A
threaded OpenBLAS beside the runtime's OpenMP threads would keep its own
threads spinning on the same cores.)

    >>> from emulators import blas
    >>> blas.threads()
    1
    >>> blas.set_threads(2)      # e.g. for the toy GCM's own BLAS calls
"""
from __future__ import annotations

import ctypes
import os
from functools import lru_cache

# scipy_openblas32 is imported inside the functions that use it, so that importing this module does
# not load it (start-up time).


@lru_cache(maxsize=None)
def preload() -> ctypes.CDLL | None:
    """Load scipy-openblas32's library into the process (globally), once.

    Returns the library, or None when the package is not installed (the
    extensions then use the system BLAS they were linked with).
    """
    try:
        import scipy_openblas32
    except ImportError:
        return None
    path = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    if "OPENBLAS_NUM_THREADS" not in os.environ and hasattr(lib, "scipy_openblas_set_num_threads"):
        lib.scipy_openblas_set_num_threads(ctypes.c_int(1))
    return lib


def _openblas() -> ctypes.CDLL | None:
    lib = preload()
    if lib is None or not hasattr(lib, "scipy_openblas_set_num_threads"):
        return None
    return lib


def threads() -> int | None:
    """Number of threads the runtime's BLAS uses, or None if it cannot be queried."""
    lib = _openblas()
    return None if lib is None else int(lib.scipy_openblas_get_num_threads())


def set_threads(n: int) -> None:
    """Use `n` BLAS threads in the Fortran runtime and the toy GCM (n >= 1)."""
    if int(n) < 1:
        raise ValueError(f"BLAS threads must be at least 1, got {n}")
    lib = _openblas()
    if lib is None:
        raise RuntimeError("the BLAS thread count can only be set with scipy-openblas32; "
                           "set OPENBLAS_NUM_THREADS before starting Python instead")
    lib.scipy_openblas_set_num_threads(ctypes.c_int(int(n)))


def info() -> str:
    """One line naming the runtime's BLAS library and its thread count."""
    lib = _openblas()
    if lib is None:
        return "system BLAS (linked at build time)"
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    return (f"{lib.scipy_openblas_get_config().decode().strip()} (scipy-openblas32), "
            f"kernels for {lib.scipy_openblas_get_corename().decode()}, {threads()} threads")
