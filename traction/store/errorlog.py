"""The bulk-extraction error log, CACHE/errors.jsonl (design.md "Errors": in bulk work a bad video is
recorded with its reason in the run's error log and the rest goes on).

One JSON object per line: {"time", "path", "stage", "reason", ...extra}. Appends are single
O_APPEND writes, so concurrent workers don't interleave within a line.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, List

from traction.store.format import ERRORS_FILE


def _root(store: Any) -> str:
    if isinstance(store, (str, os.PathLike)):
        return os.fspath(store)
    return os.fspath(store.root)  # a TrajectoryStore or StoreWriter


def log_error(store: Any, path: str, stage: str, reason: str, **extra: Any) -> None:
    """Append one line for the input ``path`` that failed at ``stage`` (decode, track, depth, ...).

    ``store`` is a store directory, a ``TrajectoryStore`` or a ``StoreWriter``."""
    root = _root(store)
    os.makedirs(root, exist_ok=True)
    line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "path": os.fspath(path), "stage": str(stage), "reason": str(reason), **extra}
    data = (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(os.path.join(root, ERRORS_FILE), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a killed process left half a line; don't glue ours onto it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_errors(store: Any) -> List[Dict[str, Any]]:
    """All complete lines of the error log (none when there is no log); torn lines are skipped."""
    path = os.path.join(_root(store), ERRORS_FILE)
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                out.append(d)
    return out
