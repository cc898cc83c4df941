"""Which fuzz targets exist: the scripts in ``targets/``, read as text, never imported.

Theory of operation: a target is ``targets/<name with underscores>.py``, an executable
script whose docstring starts with ``<name>: <one line>``. A docstring line
``Needs: <what>`` says what the target needs beyond the ``fuzz`` extra (root, a Debian
package); ``espspec fuzz --list`` prints both. Reading the files keeps this module free of
the targets' imports (scapy, namespaces): listing targets costs nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

TARGETS_DIR = Path(__file__).resolve().parent / "targets"


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    summary: str
    needs: str = ""


class UnknownTarget(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no fuzz target {name!r} (espspec fuzz --list shows them)")


def targets() -> dict[str, Target]:
    out = {}
    for path in sorted(TARGETS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        name = path.stem.replace("_", "-")
        first = doc.splitlines()[0] if doc else ""
        summary = first.split(":", 1)[1].strip() if first.startswith(f"{name}:") else first
        needs = next((line.split(":", 1)[1].strip() for line in doc.splitlines()
                      if line.startswith("Needs:")), "")
        out[name] = Target(name, path, summary, needs)
    return out


def target(name: str) -> Target:
    try:
        return targets()[name]
    except KeyError:
        raise UnknownTarget(name) from None
