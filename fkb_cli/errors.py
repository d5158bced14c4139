"""A user's mistake (reported in one line, exit status 1) told from a bug."""
from __future__ import annotations

import sys


class UserError(Exception):
    """A mistake in the command's input: reported in one line, exit status 1."""


# Exception types (module, class) that describe bad input rather than a bug.
# Looked up only in modules already imported, so reporting an error never
# imports TensorFlow.
_USER_ERROR_TYPES = [
    ("emulators.fkb", "FKBError"),
    ("emulators.modelfile", "ModelFileError"),
    ("emulators.formats", "ConversionError"),
    ("coupler.sweep", "ClusterError"),
]


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (UserError, ValueError, OSError)):   # OSError: missing, unreadable or corrupt files
        return True
    return any(isinstance(exc, getattr(sys.modules[module], name))
               for module, name in _USER_ERROR_TYPES if module in sys.modules)
