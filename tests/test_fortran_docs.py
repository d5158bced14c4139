"""The Fortran API documentation builds with FORD (scripts/fortran-docs.sh,
project file fortran/ford.md) without a warning, and documents the public
API: the umbrella module `fkb`, the network, ensemble and layer types and
their procedures, with the text of their `!!` comments."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fortran_api_docs_build_without_warnings(tmp_path):
    out = tmp_path / "ford"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "fortran-docs.sh"), str(out)],
                            capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    problems = [line for line in log.splitlines() if re.search(r"\b(warning|error)\b", line, re.IGNORECASE)]
    assert not problems, "FORD reported:\n" + "\n".join(problems)

    umbrella = (out / "module" / "fkb.html").read_text()
    assert "everything a Fortran user needs" in umbrella
    network = (out / "type" / "network.html").read_text()
    # a documented type-bound procedure and the `!!` text of its argument
    assert "predict" in network and "compile" in network
    assert "a one-line reason on failure" in network
    for page in ["ensemble.html", "layer.html", "layer_registry.html", "model_spec.html"]:
        assert (out / "type" / page).exists(), page
    status = (out / "module" / "fkb_status.html").read_text()
    assert "an allocation failed (out of memory)" in status
