"""Publish a finished case study's results under ``docs/results/NAME/``.

Published results are produced by the code at a named commit with a named
command, never edited by hand: this copies what a reader needs from a case
study's folder (``results.nc``/``.csv``, ``report.md`` and its figures,
``timings.json`` and ``invocations.json``, the configuration ``casestudy.toml``, the reference's
``world.json``, ``replicates.md`` and the replicates' reports when there are
some, the warm experiment's ``warming.json``) and writes ``PROVENANCE.md``: the command that ran the study, the
commit of the code it ran (recorded by the study in ``timings.json``), the
command that published it, and the date.

    python -m experiments.publish OUT docs/results/standard \\
        --command "fkb casestudy --preset standard --out OUT"

The emulators' folders (models, coupled runs: gigabytes) stay behind.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

from emulators.atomic_files import write_text_replacing

__all__ = ["publish", "main"]

FILES = ("results.nc", "results.csv", "report.md", "timings.json", "invocations.json", "casestudy.toml",
         "replicates.md")


def publish(out_dir: str | os.PathLike, dest: str | os.PathLike, command: str,
            commit: str | None = None, then: list[str] | None = None) -> Path:
    """Copy the case study in `out_dir` to `dest` (created; files it held
    before are replaced) with its ``PROVENANCE.md``; returns `dest`. `commit`:
    the code's commit when ``timings.json`` does not record it. `then`: the
    commands run on the folder afterwards (crash records, the warm
    experiment, the report written again), each with its commit, as the
    provenance lists them."""
    out, dest = Path(out_dir), Path(dest)
    missing = [name for name in ("results.nc", "report.md", "timings.json", "casestudy.toml")
               if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: not a finished case study (no {missing[0]})")
    timings = json.loads((out / "timings.json").read_text())
    code = timings.get("code", {})
    commit = commit or code.get("commit")
    if not commit:
        raise ValueError(f"{out}/timings.json records no commit: name it with --commit")
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in FILES:
        if (out / name).is_file():
            shutil.copy2(out / name, dest / name)
            copied.append(name)
    for figure in sorted(out.glob("*.png")):
        shutil.copy2(figure, dest / figure.name)
        copied.append(figure.name)
    if (out / "reference" / "world.json").is_file():
        shutil.copy2(out / "reference" / "world.json", dest / "world.json")
        copied.append("world.json")
    if (out / "warming" / "warming.json").is_file():
        shutil.copy2(out / "warming" / "warming.json", dest / "warming.json")
        copied.append("warming.json")
    for replicate in sorted((out / "replicates").glob("seed_*")):
        target = dest / "replicates" / replicate.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("results.nc", "results.csv", "report.md"):
            if (replicate / name).is_file():
                shutil.copy2(replicate / name, target / name)
        copied.append(f"replicates/{replicate.name}/")
    dirty = " (with changes not committed)" if code.get("dirty") else ""
    lines = ["# Provenance", "",
             f"- produced by: `{command}`",
             f"- code: commit `{commit}`{dirty}",
             *(f"- then: {line}" for line in then or []),
             f"- published by: `python -m experiments.publish {out} {dest} --command ...` on "
             f"{datetime.date.today().isoformat()}",
             "- files: " + ", ".join(f"`{name}`" for name in copied), "",
             "Nothing here is edited by hand. The wall times in `timings.json` and the report are those of the "
             "machine that ran it (docs/case-study.md says which)."]
    write_text_replacing(dest / "PROVENANCE.md", "\n".join(lines) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.publish", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the case study's folder")
    parser.add_argument("dest", help="where to publish (e.g. docs/results/standard)")
    parser.add_argument("--command", required=True, help="the command that ran the study")
    parser.add_argument("--commit", help="the code's commit, when timings.json does not record it")
    parser.add_argument("--then", action="append", metavar="TEXT",
                        help="a command run on the folder afterwards, with its commit (repeatable)")
    args = parser.parse_args(argv)
    try:
        dest = publish(args.out, args.dest, args.command, args.commit, args.then)
    except (FileNotFoundError, ValueError) as error:
        print(f"publish: {error}", file=sys.stderr)
        return 1
    print(f"published {args.out} in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
