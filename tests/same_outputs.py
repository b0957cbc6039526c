"""Do the reference notebooks give the same outputs as at a git revision? A check for a
change that should move only code (`python tests/same_outputs.py [REV]`, default HEAD):
every output of every code cell of `notebooks/NN_*.ipynb` is compared line by line with
the revision's, with timings, memory addresses, plotly's random ids and the prefix (time, process)
of TensorFlow's native log lines masked. It prints
each differing cell and exits 1 if any differs."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASKS = [
    (re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ", re.M), "<native log> "),  # absl's prefix
    (re.compile(r"\b\d+(\.\d+)?\s*(min|s|ms)\b( per epoch)?"), "<time>"),
    (re.compile(r"0x[0-9a-f]{6,}"), "<address>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
]


def output_lines(notebook: dict) -> list[list[str]]:
    """Per code cell, its outputs as masked text lines (stream text and every mime type)."""
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = []
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [
                value if isinstance(value, str) else "".join(value) if isinstance(value, list)
                else json.dumps(value, sort_keys=True)
                for value in output.get("data", {}).values()]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for pattern, mask in MASKS:
                    text = pattern.sub(mask, text)
                lines += text.splitlines()
        cells.append(lines)
    return cells


def differences(revision: str = "HEAD") -> list[str]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        relative = path.relative_to(ROOT).as_posix()
        before = subprocess.run(["git", "show", f"{revision}:{relative}"], cwd=ROOT,
                                capture_output=True, text=True)
        if before.returncode != 0:
            found.append(f"{relative}: not at {revision}")
            continue
        old, new = output_lines(json.loads(before.stdout)), output_lines(json.loads(path.read_text()))
        if len(old) != len(new):
            found.append(f"{relative}: {len(old)} code cells at {revision}, {len(new)} now")
            continue
        for index, (a, b) in enumerate(zip(old, new)):
            if a != b:
                changed = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
                               min(len(a), len(b)))
                found.append(f"{relative}: code cell {index}, output line {changed}: "
                             f"{(a[changed] if changed < len(a) else '<none>')[:120]!r} -> "
                             f"{(b[changed] if changed < len(b) else '<none>')[:120]!r}")
    return found


def main(argv: list[str]) -> int:
    revision = argv[0] if argv else "HEAD"
    found = differences(revision)
    print("\n".join(found) if found else f"every output as at {revision}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
