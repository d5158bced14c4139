"""The packages' layers point down (docs/architecture.md): emulators <- gcm_toy
<- coupler <- experiments <- fkb_cli, each importing only those below it.
import-linter checks the contract in pyproject.toml ([tool.importlinter]); a
tree with an upward import breaks it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# import-linter reads the sources from sys.path; the editable install's import
# hook would hide them, so the check runs without it
LINT = textwrap.dedent("""
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (type(f).__module__ or "")]
    sys.path.insert(0, sys.argv[1])
    from importlinter import cli
    sys.exit(cli.lint_imports(config_filename=sys.argv[2], no_cache=True, no_logo=True))
""")


def lint(root: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT, str(root), str(config)], cwd=root, capture_output=True,
                          text=True, timeout=300)


def test_the_layers_point_down():
    result = lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "layers point down KEPT" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    for name, body in (("low", "import high\n"), ("high", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    config = tmp_path / "layers.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["high", "low"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "layers point down"\ntype = "layers"\n'
                      'layers = ["high", "low"]\n')
    result = lint(tmp_path, config)
    assert result.returncode == 1 and "layers point down BROKEN" in result.stdout
