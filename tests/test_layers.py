"""The packages' layers point down (docs/architecture.md): emulators <- gcm_toy
<- coupler <- experiments <- fkb_cli, each importing only those below it.
import-linter checks the contract in pyproject.toml ([tool.importlinter]); a
tree with an upward import breaks it. No module imports a private name
(``_name``) of another package: a small scan of the sources checks that,
which import-linter cannot express."""
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


PACKAGES = ("emulators", "gcm_toy", "coupler", "experiments", "fkb_cli")


def private_imports(root: Path) -> list[str]:
    """Imports, anywhere in a module (function-local ones too), of a private
    name (``_name``) or a private module of another of the packages."""
    import ast

    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [(node.module, [alias.name for alias in node.names])]
                elif isinstance(node, ast.Import):
                    modules = [(alias.name, []) for alias in node.names]
                else:
                    continue
                for module, names in modules:
                    parts = module.split(".")
                    if parts[0] not in PACKAGES or parts[0] == package:
                        continue
                    private = [p for p in parts[1:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
                    if private:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {module} {private[0]}")
    return found


def test_no_module_imports_a_private_name_of_another_package():
    assert private_imports(ROOT) == []


def test_a_private_import_from_another_package_is_found(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "coupler" / "a.py").write_text("def f():\n    from emulators.modelfile import _CUSTOM_KINDS\n")
    (tmp_path / "coupler" / "b.py").write_text("from coupler.sweep import _private_to_coupler\n")
    assert private_imports(tmp_path) == ["coupler/a.py:2: emulators.modelfile _CUSTOM_KINDS"]
