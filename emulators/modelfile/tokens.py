"""The words of a model file's header: attributes (``key=value``) and
integers, written and parsed exactly as the Fortran reader parses them."""
from __future__ import annotations

import re

import numpy as np

from emulators.modelfile.spec import AttributeValue, MAX_HEADER_INT, _INT_RE, _REAL_RE, _TOKEN_RE


def _format_attribute(key: str, value: AttributeValue) -> str:
    if isinstance(value, (bool, np.bool_)):
        text = str(int(value))
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = repr(float(value))
    else:
        text = str(value)
        if not _TOKEN_RE.match(text) or "=" in text or _INT_RE.match(text) or _REAL_RE.match(text):
            raise ValueError(f"attribute {key}={text!r} is not an identifier")
    return f"{key}={text}"


def _parse_attribute(text: str) -> AttributeValue:
    if _INT_RE.match(text) and _header_int(text) is not None:   # else a real, as Fortran reads it
        return int(text)
    if _REAL_RE.match(text):
        return float(text)
    return text


def _header_int(text: str) -> int | None:
    """An integer of the header as the Fortran reader parses one (an optional
    sign and at most 10 digits, at most MAX_HEADER_INT), else None."""
    if not re.fullmatch(r"[+-]?[0-9]{1,10}", text) or abs(int(text)) > MAX_HEADER_INT:
        return None
    return int(text)


def _positive_int(text: str, what: str) -> int:
    value = _header_int(text)
    if value is None or value < 1:
        raise ValueError(f"{what} {text!r} is not a positive integer (of at most 10 digits, below 2^31)")
    return value
