"""Helpers shared by the accuracy experiments (ablations, label efficiency): run `traction`
commands in-process and collect their --json results."""
from __future__ import annotations

import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def run_json(argv: List[str]) -> Dict:
    """`traction <argv> --json` in this process; returns the JSON object it printed."""
    from traction.cli import main

    buf = io.StringIO()
    t0 = time.time()
    print(f"$ traction {' '.join(argv)}", file=sys.stderr, flush=True)
    with contextlib.redirect_stdout(buf):
        code = main(argv + ["--json"])
    if code != 0:
        raise SystemExit(f"traction {argv[0]} failed with exit code {code}")
    res = json.loads(buf.getvalue().strip().splitlines()[-1])
    res["wall_s"] = round(time.time() - t0, 1)
    return res


def environment() -> Dict:
    """Flat machine description merged into the experiments' metadata."""
    import torch

    env = _common.environment("cuda" if torch.cuda.is_available() else "cpu")
    v = env["versions"]
    return {"date": env["date"], "torch": v["torch"], "numpy": v["numpy"], "python": v["python"],
            "machine": platform.machine(), "cpu_threads": env["torch_threads"], "cuda": env["cuda"]}


def markdown_table(rows: List[Dict], columns: List[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
