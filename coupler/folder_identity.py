"""A result folder's identity: which configuration made it, and which code.

Results of two configurations must never be mixed in one folder: a sweep
re-run with another ``[space]`` would otherwise count the old emulators as
"finished before", and a coupled run of another network would replace the
one there. So ``fkb sweep``, ``fkb couple`` and ``fkb casestudy`` claim
their ``--out`` folder with :func:`claim_folder` before any work:

- a new folder gets ``OUT/identity.json``: the kind of result (``sweep``,
  ``couple``, ``casestudy``), the configuration as JSON, its SHA-256 (of the
  canonical JSON: sorted keys, no spaces) and the code versions that worked
  on the folder;
- a folder of the same kind and configuration is a re-run: it continues;
- a folder of another kind, or of another configuration, is refused
  (:class:`FolderConflict`, a ValueError) with one line naming the first
  differences (``training.epochs: 1 there, 3 here``), unless the caller is
  asked to start over (``--overwrite``): then the products of the old
  configuration are removed and the folder is claimed anew.

**The code version is recorded, not compared.** A study at the paper's
scale outlives a session; the scientist continuing it after a commit
expects the same command to go on, not to lose a day of finished
emulators because a typo in a docstring was fixed. A configuration
difference changes what the results mean and is refused; a code difference
may or may not (a bug fix in the scoring would matter), and only its author
can say which. So every code version that worked on the folder (the package
version, the git commit and whether the checkout had changes) is kept in
``identity.json`` in order, and a re-run with another one says so in one
line (``note: ... was started at commit X; continuing at Y``) and the case
study's report names them. To keep one code version, start over or use a
new folder.

Folders made before ``identity.json`` (a sweep's ``sweep.json``, a case
study's ``casestudy.toml``, a coupled run's ``score.json``) are recognised
through the `legacy` reader their command passes: their configuration is
compared the same way and the identity is written on the first re-run.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from emulators.provenance import package_version

from emulators.atomic_files import write_text_replacing

__all__ = ["IDENTITY_FILE", "LEGACY_KINDS", "FolderConflict", "FolderIdentity", "claim_folder", "code_version",
           "configuration_hash", "differences", "discard_claim", "read_identity", "summarize"]

IDENTITY_FILE = "identity.json"
"""The identity of a result folder."""


LEGACY_KINDS = {"sweep.json": "sweep", "casestudy.toml": "casestudy", "score.json": "couple"}
"""Files that told a folder's kind before ``identity.json``."""


KIND_NAMES = {"sweep": "sweep", "couple": "coupled run", "casestudy": "case study"}
"""How messages name the kinds of result."""


def _named(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


class FolderConflict(ValueError):
    """The folder holds results of another kind or configuration."""


@dataclass
class FolderIdentity:
    """What :func:`claim_folder` found and wrote: the folder, the kind, the
    configuration's hash, every code version that worked on it (this one
    last), whether the folder was new, and the note to print when the code
    differs from the one that started it ('' if not)."""

    folder: Path
    kind: str
    sha256: str
    code: list[dict[str, Any]] = field(default_factory=list)
    new: bool = True
    note: str = ""


def code_version() -> dict[str, Any]:
    """The code running: the package version, the commit of this checkout
    (``git rev-parse HEAD``) and whether it has changes not committed; the
    commit keys are missing outside a git checkout."""
    info: dict[str, Any] = {"package": package_version()}
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    info.update(commit=commit, dirty=bool(status.strip()))
    return info


def _describe(code: Mapping[str, Any]) -> str:
    commit = code.get("commit")
    text = f"fkb {code.get('package', 'unknown')}"
    if commit:
        text += f" at commit {commit[:12]}" + (" with changes not committed" if code.get("dirty") else "")
    return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def configuration_hash(configuration: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration's canonical JSON."""
    return hashlib.sha256(_canonical(configuration).encode()).hexdigest()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differences(theirs: Mapping[str, Any], ours: Mapping[str, Any],
                added: Mapping[str, Any] | None = None) -> list[str]:
    """The settings (dotted names) whose values differ, as ``name: X there,
    Y here`` in name order. `added`: settings introduced after folders were
    made, with the value those folders had without saying it."""
    a = {**dict(added or {}), **_flat(json.loads(json.dumps(theirs)))}
    b = {**dict(added or {}), **_flat(json.loads(json.dumps(ours)))}
    return [f"{key}: {a.get(key)!r} there, {b.get(key)!r} here" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def summarize(items: Sequence[str], limit: int = 3) -> str:
    """The first `limit` differences, and how many more."""
    text = "; ".join(items[:limit])
    return text + (f"; {len(items) - limit} more" if len(items) > limit else "")


def read_identity(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The identity of `folder` (None without one); ValueError if unreadable."""
    path = Path(folder) / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        identity = json.loads(path.read_text())
        if not isinstance(identity, dict) or not {"kind", "configuration"} <= set(identity):
            raise ValueError("no kind or configuration")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a folder identity ({exc}); move it away if the folder is yours") from None
    return identity


def _start_over(folder: Path, products: Sequence[str]) -> None:
    for name in (*products, IDENTITY_FILE):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def discard_claim(folder: str | os.PathLike, products: Sequence[str]) -> None:
    """Undo the claim of a folder that was new (:attr:`FolderIdentity.new`)
    when its run fails before a result: its identity and `products` go, so
    that the next attempt, of this configuration or another, finds the
    folder as it was."""
    _start_over(Path(folder), products)


def claim_folder(folder: str | os.PathLike, kind: str, configuration: Mapping[str, Any], *,
                 products: Sequence[str] = (), legacy: Callable[[Path], Mapping[str, Any] | None] | None = None,
                 added: Mapping[str, Any] | None = None, start_over: bool = False,
                 start_over_option: str | None = "--overwrite") -> FolderIdentity:
    """Claim `folder` for a result of `kind` made with `configuration`
    (JSON-able; what may change between re-runs, such as the number of
    emulators, left out by the caller).

    - no identity and none of `products` (names in the folder the result
      writes): the folder is new; the identity is written;
    - an identity of this kind and configuration (or, without one, the
      configuration `legacy` reads from an older folder): a re-run; a new
      code version is appended and described in ``note``;
    - anything else is refused with :class:`FolderConflict` naming the
      differences, unless `start_over`: then `products` and the old identity
      are removed first. `start_over_option` is the option named in the
      refusal (None: starting over is not offered).

    Call it with the folder's lock held (:mod:`coupler.folder_lock`)."""
    folder = Path(folder)
    ours = json.loads(json.dumps(configuration))
    code = code_version()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    hint = "choose another --out" + (f", or pass {start_over_option} to start over (removing its results)"
                                     if start_over_option else "")
    identity = read_identity(folder)
    theirs, history = None, []
    if identity is not None:
        theirs_kind, theirs = str(identity["kind"]), identity["configuration"]
        history = list(identity.get("code", []))
    else:
        theirs_kind = next((k for name, k in LEGACY_KINDS.items() if (folder / name).exists()), kind)
        if legacy is not None and theirs_kind == kind:
            theirs = legacy(folder)
    if theirs_kind != kind:            # never started over: that would mix two kinds of results
        raise FolderConflict(f"{folder} holds a {_named(theirs_kind)}, not a {_named(kind)}; choose another --out")
    exists = identity is not None or theirs is not None or any((folder / name).exists() for name in products)
    if exists and not start_over:
        if theirs is None:
            found = next(name for name in products if (folder / name).exists())
            raise FolderConflict(f"{folder} holds results ({found}) of an unknown configuration (no "
                                 f"{IDENTITY_FILE}); {hint}")
        found = differences(theirs, ours, added)
        if found:
            raise FolderConflict(f"{folder} holds a {_named(kind)} of another configuration ({summarize(found)}); "
                                 f"{hint}")
    elif exists:
        _start_over(folder, products)
        exists, history = False, []
    sha = configuration_hash(ours)
    note = ""
    mine = {key: code[key] for key in ("package", "commit", "dirty") if key in code}
    if not history or {k: history[-1].get(k) for k in mine} != mine:
        if history:
            note = (f"note: {folder} was started by {_describe(history[0])}; continuing with {_describe(code)} "
                    f"(both recorded in {IDENTITY_FILE})")
        elif exists:
            note = f"note: {folder} was made before {IDENTITY_FILE}; its code version is unknown"
        history.append({**mine, "first_used": now})
    folder.mkdir(parents=True, exist_ok=True)
    write_text_replacing(folder / IDENTITY_FILE, json.dumps(
        {"kind": kind, "sha256": sha, "configuration": ours, "code": history}, indent=2) + "\n")
    return FolderIdentity(folder, kind, sha, history, new=not exists, note=note)
