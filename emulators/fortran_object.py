"""The lifetime of a Python object that owns Fortran memory through a handle.

``emulators.fkb.Network``/``Ensemble`` and ``gcm_toy.Model`` hold handles
into handle tables of their f2py extensions. :class:`FortranObject` gives
them one lifetime: ``close()`` frees the Fortran memory (once; later calls do
nothing), the object is a context manager, and garbage collection closes it
too. A subclass implements ``_release()``.
"""
from __future__ import annotations


class FortranObject:
    """Mixin: ``close``, ``with`` and garbage collection for Fortran handles."""

    def _release(self) -> None:
        """Free the Fortran memory and forget the handle(s); idempotent."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the Fortran memory of this object."""
        self._release()

    def __del__(self):
        try:
            self._release()
        except Exception:  # interpreter shutdown: the extension may be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._release()
