"""Helpers shared by the accuracy experiments (ablations, label efficiency): run `traction`
commands in-process and collect their --json results."""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import platform
import sys
import time
from typing import Dict, List

import torch


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
    import numpy as np

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def markdown_table(rows: List[Dict], columns: List[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
