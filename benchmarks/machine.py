"""What the benchmarks measure the engines against: the machine's float32
multiply-add peak (``fma_peak.c``) and a busy neighbour (another process
spinning on one core, as when a second job shares the machine); and the
process's resident memory."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
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


def rss_bytes() -> int:
    """The process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
