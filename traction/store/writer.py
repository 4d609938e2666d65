"""Writing a trajectory store: ``StoreWriter`` (design.md "Data model": written atomically, a killed
extraction resumes where it stopped and loses or duplicates nothing).

Commit protocol of one shard (``flush``), run under an exclusive lock on CACHE/.lock:

    1. repair what a killed writer may have left (below)
    2. write shards/.tmp-NNNNNN.safetensors, fsync it
    3. rename it to shards/NNNNNN.safetensors, fsync the directory
    4. append the shard's manifest lines in one write, fsync the manifest

A kill at any instant leaves one of: a stale temp file (deleted on repair), a complete shard with
none or only some of its manifest lines (the missing lines are re-appended from the shard's own
metadata on repair), a torn last manifest line (readers ignore it; repair truncates it). A record
is visible exactly when its manifest line is complete, and its shard was durable before that line
was written, so every record is either fully there or absent. Repair runs when a writer opens
and before every commit, so concurrent writers (e.g. several extraction workers sharing one cache
on one file system) also clean up after each other.

Duplicates: ``add`` rejects a clip id that is already committed or pending (StoreError) unless
``overwrite=True``; then the new record replaces the old one for readers (the manifest is
append-only and the last entry of a clip id wins; the old bytes stay in their shard). A pending
record whose clip id was committed by another writer in the meantime is dropped at commit
(the first committed copy wins) and listed in ``writer.skipped``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import warnings
from typing import Any, Dict, List, Optional, Set

import numpy as np

from traction.errors import StoreError
from traction.store import errorlog
from traction.store.format import (ERRORS_FILE, FORMAT, LOCK_FILE, SHARD_SUFFIX, TMP_PREFIX, VERSION, ManifestEntry,
                                   entries_from_shard_metadata, fsync_dir,
                                   record_checksum, shard_metadata, store_paths)
from traction.trajectories import Trajectories

try:  # POSIX advisory locks; released by the kernel when a process dies, even by SIGKILL
    import fcntl
except ImportError:  # pragma: no cover - Windows: single writer per store
    fcntl = None

_SHARD_NAME = re.compile(r"^(\d+)\.safetensors")
_RECORD_META_KEYS = ("tracker", "depth_model", "source")


class _Lock:
    """Exclusive advisory lock on CACHE/.lock, held only while committing."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self) -> "_Lock":
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


@dataclasses.dataclass
class _Pending:
    entry: ManifestEntry
    arrays: Dict[str, np.ndarray]
    overwrite: bool

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


class StoreWriter:
    """Appends records to the store at ``path`` (created when missing).

    ``shard_size`` records (or ``max_shard_bytes`` of arrays, whichever comes first) make one
    shard. ``store_meta`` (e.g. ``tracker="lk", depth_model="none"``) is saved in store.json when
    the store is created and is the default of each record's tracker / depth_model / source.

        with StoreWriter("cache/", tracker="lk", depth_model="none") as w:
            for clip_id, path, label in clips:
                if w.has(clip_id):          # resumable: a rerun skips finished clips
                    continue
                w.add(clip_id, extract(path), label=label, split="train", meta={"source": path})
    """

    def __init__(self, path: "str | os.PathLike[str]", shard_size: int = 256, *,
                 max_shard_bytes: int = 512 << 20, **store_meta: Any) -> None:
        if int(shard_size) < 1:
            raise StoreError(f"{path}: shard_size must be >= 1, got {shard_size}")
        self.root = os.fspath(path)
        self.shard_size = int(shard_size)
        self.max_shard_bytes = int(max_shard_bytes)
        self.store_meta = dict(store_meta)
        self.skipped: List[str] = []
        self._store_json, self._manifest, self._shard_dir = store_paths(self.root)
        self._pending: Dict[str, _Pending] = {}
        self._known: Dict[str, ManifestEntry] = {}     # clip id -> latest committed entry
        self._by_shard: Dict[str, Set[str]] = {}       # shard -> clip ids with a manifest line
        self._complete_shards: Set[str] = set()        # shards known to have all their lines
        self._last_shard: Optional[str] = None         # shard of the last manifest line
        self._offset = 0                               # manifest bytes already parsed
        self._closed = False
        self._check_target()
        os.makedirs(self._shard_dir, exist_ok=True)
        self._lock = _Lock(os.path.join(self.root, LOCK_FILE))
        with self._lock:
            self._init_files()
            self._repair()

    # ------------------------------------------------------------------ setup
    def _check_target(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(f"{self.root}: cannot create a store here (a file of that name exists)")
        if not os.path.isdir(self.root):
            return
        if os.path.exists(self._manifest) or os.path.exists(self._store_json):
            return
        ours = (LOCK_FILE, ERRORS_FILE, os.path.basename(self._shard_dir))  # errors may be logged first
        others = [n for n in os.listdir(self.root) if n not in ours]
        if others:
            raise StoreError(f"{self.root}: directory is not empty and not a traction store "
                             f"(found {others[0]!r}); choose an empty or new directory")

    def _init_files(self) -> None:
        if not os.path.exists(self._store_json):
            header = {"format": FORMAT, "version": VERSION,
                      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            header.update({k: v for k, v in self.store_meta.items() if k not in header})
            try:
                text = json.dumps(header, indent=1, ensure_ascii=False)
            except TypeError as e:
                raise StoreError(f"{self.root}: store metadata is not JSON-serializable ({e})") from None
            _atomic_write_text(self._store_json, text + "\n")
        if not os.path.exists(self._manifest):
            os.close(os.open(self._manifest, os.O_WRONLY | os.O_CREAT, 0o644))
            fsync_dir(self.root)

    # ------------------------------------------------------------------ manifest bookkeeping
    def _note(self, e: ManifestEntry) -> None:
        self._known[e.clip_id] = e
        self._by_shard.setdefault(e.shard, set()).add(e.clip_id)
        self._last_shard = e.shard

    def _refresh(self) -> int:
        """Parse manifest lines appended since the last call (by us or other writers).
        Returns the manifest's size in bytes (> self._offset when its last line is torn)."""
        size = os.path.getsize(self._manifest)
        if size < self._offset:  # truncated under us (another writer repaired): start over
            self._known.clear()
            self._by_shard.clear()
            self._complete_shards.clear()
            self._offset, self._last_shard = 0, None
        if size == self._offset:
            return size
        with open(self._manifest, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        end = data.rfind(b"\n") + 1
        for lineno, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError:
                raise StoreError(f"{self._manifest}: corrupt manifest line (not JSON) at byte "
                                 f"{self._offset}+, line {lineno} of the new part") from None
            self._note(ManifestEntry.from_dict(d, self._manifest))
        self._offset += end
        return size

    def _append_lines(self, entries: List[ManifestEntry]) -> None:
        data = "".join(e.to_json() + "\n" for e in entries).encode("utf-8")
        fd = os.open(self._manifest, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, data)  # one write: a kill tears at most the tail of this batch
            os.fsync(fd)
        finally:
            os.close(fd)
        for e in entries:
            self._note(e)
        self._offset += len(data)

    # ------------------------------------------------------------------ repair (lock held)
    def _repair(self) -> None:
        size = self._refresh()
        if size > self._offset:  # torn last line of a killed writer: cut it so appends stay aligned
            with open(self._manifest, "r+b") as f:
                f.truncate(self._offset)
                f.flush()
                os.fsync(f.fileno())
        names = sorted(os.listdir(self._shard_dir))
        for name in names:
            if name.startswith(TMP_PREFIX):  # a commit that never reached its rename
                os.remove(os.path.join(self._shard_dir, name))
        shards = [n for n in names if _SHARD_NAME.match(n) and n.endswith(SHARD_SUFFIX)]
        # A kill between rename and a complete manifest append leaves the newest shard with
        # none (orphan) or some (the last shard in the manifest) of its lines.
        suspects = [n for n in shards if n not in self._by_shard]
        if self._last_shard is not None and self._last_shard not in self._complete_shards:
            suspects.append(self._last_shard)
        for name in suspects:
            self._recover_shard(name)

    def _recover_shard(self, name: str) -> None:
        from safetensors import safe_open

        path = os.path.join(self._shard_dir, name)
        if not os.path.exists(path):
            return  # the manifest names a missing shard: readers report it; nothing to recover
        try:
            with safe_open(path, framework="numpy") as f:
                entries = entries_from_shard_metadata(f.metadata(), name)
        except Exception as e:
            # Only a shard that was never fully committed can get here (shards are renamed into
            # place complete); keep the bytes for inspection but out of the store.
            os.replace(path, path + ".corrupt")
            errorlog.log_error(self.root, path, "store", f"unreadable shard set aside as .corrupt ({e})")
            warnings.warn(f"{path}: unreadable shard set aside as {name}.corrupt ({e})")
            return
        have = self._by_shard.get(name, set())
        missing = [e for e in entries if e.clip_id not in have]
        if missing:
            self._append_lines(missing)
        self._complete_shards.add(name)

    def _next_shard_name(self) -> str:
        numbers = [int(m.group(1)) for m in map(_SHARD_NAME.match, os.listdir(self._shard_dir)) if m]
        return f"{max(numbers, default=-1) + 1:06d}{SHARD_SUFFIX}"

    # ------------------------------------------------------------------ public API
    def has(self, clip_id: str) -> bool:
        """True when ``clip_id`` is committed (as of this writer's last commit) or pending."""
        return clip_id in self._known or clip_id in self._pending

    def __len__(self) -> int:
        """Records committed (as of the last commit) plus pending, without double counting."""
        return len(set(self._known) | set(self._pending))

    def add(self, clip_id: str, trajectories: Trajectories, *, label: Optional[str] = None,
            split: str = "train", meta: Optional[Dict[str, Any]] = None, overwrite: bool = False) -> None:
        """Queue one record; a full shard is committed automatically.

        meta: ``tracker``, ``depth_model`` and ``source`` become manifest fields (defaulting to
        the writer's store metadata); other keys are kept in the entry's ``extra`` dict."""
        if self._closed:
            raise StoreError(f"{self.root}: writer is closed")
        if not isinstance(clip_id, str) or not clip_id:
            raise StoreError(f"{self.root}: clip_id must be a non-empty string, got {clip_id!r}")
        if not isinstance(trajectories, Trajectories):
            raise StoreError(f"clip {clip_id!r}: expected traction.Trajectories, got {type(trajectories).__name__}")
        if label is not None and not isinstance(label, str):
            raise StoreError(f"clip {clip_id!r}: label must be a string or None, got {label!r}")
        if not isinstance(split, str) or not split or split != split.strip():
            raise StoreError(f"clip {clip_id!r}: split must be a non-empty name, got {split!r}")
        if not overwrite and self.has(clip_id):
            raise StoreError(f"clip {clip_id!r}: already in store {self.root}; skip it (writer.has) "
                             "or pass overwrite=True to replace it")
        trajectories.validate()
        meta = dict(meta or {})
        fields = {k: meta.pop(k, self.store_meta.get(k)) for k in _RECORD_META_KEYS}
        try:
            json.dumps(meta)
        except TypeError as e:
            raise StoreError(f"clip {clip_id!r}: meta is not JSON-serializable ({e})") from None
        arrays = {name: np.array(getattr(trajectories, name), dtype=np.float32, copy=True)
                  for name in ("xy", "vis", "depth", "queries", "frame_indices")
                  if getattr(trajectories, name) is not None}
        t = trajectories
        entry = ManifestEntry(
            clip_id=clip_id, label=label, split=split, shard="", key="", N=t.num_points,
            T=t.num_frames, H=t.height, W=t.width, fps=t.fps, has_depth=t.has_depth,
            checksum=record_checksum(arrays), extra=meta, **fields)
        self._pending.pop(clip_id, None)
        self._pending[clip_id] = _Pending(entry, arrays, overwrite)
        if (len(self._pending) >= self.shard_size
                or sum(p.nbytes for p in self._pending.values()) >= self.max_shard_bytes):
            self.flush()

    def flush(self) -> None:
        """Commit the pending records as one shard (see the module docstring for the protocol)."""
        from safetensors.numpy import save_file

        if not self._pending:
            return
        with self._lock:
            self._repair()
            batch = []
            for p in self._pending.values():
                if not p.overwrite and p.entry.clip_id in self._known:
                    self.skipped.append(p.entry.clip_id)  # another writer committed it first
                else:
                    batch.append(p)
            if not batch:
                self._pending.clear()
                return
            name = self._next_shard_name()
            tensors, entries = {}, []
            for j, p in enumerate(batch):
                e = dataclasses.replace(p.entry, shard=name, key=str(j))
                entries.append(e)
                for arr_name, arr in p.arrays.items():
                    tensors[f"{j}/{arr_name}"] = arr
            final = os.path.join(self._shard_dir, name)
            tmp = os.path.join(self._shard_dir, TMP_PREFIX + name)
            save_file(tensors, tmp, metadata=shard_metadata(entries))
            os.chmod(tmp, 0o644)  # safetensors creates 0600; shards are meant to be shared read-only
            _fsync_file(tmp)
            os.replace(tmp, final)
            fsync_dir(self._shard_dir)
            self._append_lines(entries)
            self._complete_shards.add(name)
            self._pending.clear()

    def log_error(self, path: str, stage: str, reason: str, **extra: Any) -> None:
        """Record a failed input in CACHE/errors.jsonl (bulk extraction goes on)."""
        errorlog.log_error(self.root, path, stage, reason, **extra)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._lock.close()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Records added before an exception are complete: commit them so a rerun can skip them.
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:  # keep the original exception as the one raised
            warnings.warn(f"{self.root}: could not commit pending records ({close_error})")

    def __repr__(self) -> str:
        return f"StoreWriter({self.root!r}, committed={len(self._known)}, pending={len(self._pending)})"
