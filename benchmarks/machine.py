"""What the benchmarks measure the engines against: the machine's float32
multiply-add peak (``fma_peak.c``) and a busy neighbour (another process
spinning on one core, as when a second job shares the machine)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fma_peak() -> float | None:
    """One core's float32 multiply-add peak in GFLOP/s, or None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        subprocess.run([cc, "-O2", "-march=native", "-o", str(exe), str(HERE / "fma_peak.c")], check=True)
        return float(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()[0])


def busy_neighbour() -> subprocess.Popen:
    """A process spinning on the machine's last core (kill it when done)."""
    code = f"import os; os.sched_setaffinity(0, {{{os.cpu_count() - 1}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])
