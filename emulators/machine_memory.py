"""How much memory this process may use: the machine's physical memory, or
the limit of the control group it runs in (a container, a batch job's
cgroup) when that is smaller. Readers and configurations compare what they
are about to allocate against a fraction of it, so that a request that
cannot fit is refused in one line instead of ending in an out-of-memory kill
or an allocation that aborts the Fortran runtime."""
from __future__ import annotations

import os
from pathlib import Path

MEMORY_FRACTION = 0.5
"""What one request (a grid, an input array) may take of the usable memory."""

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),                        # cgroup v2, the process's own namespace
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),      # cgroup v1
)


def physical_memory() -> int:
    """Physical memory of the machine [bytes] (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def cgroup_memory_limit(files: tuple[Path, ...] = _CGROUP_LIMITS) -> int:
    """The memory limit of this process's control group [bytes]; 0 if there
    is none ("max", or cgroup v1's huge "unlimited" value) or it cannot be read."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2 ** 60:
            return int(text)
        return 0
    return 0


def usable_memory() -> int:
    """The memory this process may use [bytes]: the smaller of the machine's
    and its control group's limit (0 if neither is known)."""
    known = [value for value in (physical_memory(), cgroup_memory_limit()) if value > 0]
    return min(known) if known else 0
