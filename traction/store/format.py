"""On-disk layout of a trajectory store (design.md "Data model"; paper appendix G: trajectories are
extracted once and cached).

    CACHE/store.json                    {"format": "traction-store", "version": 1, "created": ..., meta}
    CACHE/manifest.jsonl                one JSON line per committed record (``ManifestEntry``)
    CACHE/shards/NNNNNN.safetensors     many records per shard; tensors "<key>/xy", "<key>/vis",
                                        "<key>/depth" (only for 2.5D records), "<key>/queries",
                                        "<key>/frame_indices"; the shard's metadata repeats its
                                        manifest entries so a lost manifest line can be rebuilt
    CACHE/errors.jsonl                  bulk-extraction error log (see ``traction.store.errorlog``)
    CACHE/.lock                         advisory lock that serializes commits of concurrent writers

Why safetensors: it is an established, well-kept format (Hugging Face) with a tiny, audited
reader; it never unpickles anything; the JSON header (names, dtypes, shapes, offsets and our
metadata) is read without touching the data; tensors are read by offset from a memory map, so
a record costs one header lookup and its own bytes. Arrow/Parquet would add a columnar layer our
fixed-shape float arrays do not need, WebDataset (tar of pickles/npy) cannot be read by key
without an index, and Zarr spreads one record over many small chunk files.

Shards are immutable once written: appending a record writes a new shard; the manifest is
append-only. That is what makes a killed writer harmless (see ``traction.store.writer``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from traction.errors import StoreError

FORMAT = "traction-store"
VERSION = 1
SHARD_FORMAT = "traction-shard"

STORE_FILE = "store.json"
MANIFEST_FILE = "manifest.jsonl"
ERRORS_FILE = "errors.jsonl"
LOCK_FILE = ".lock"
SHARD_DIR = "shards"
SHARD_SUFFIX = ".safetensors"
TMP_PREFIX = ".tmp-"

# Arrays of one record, in the order they are hashed. "depth" is absent for 2D records.
ARRAY_NAMES = ("xy", "vis", "depth", "queries", "frame_indices")


@dataclasses.dataclass
class ManifestEntry:
    """One committed record: where it lives and what it is (one line of manifest.jsonl)."""

    clip_id: str
    label: Optional[str]
    split: str
    shard: str              # file name inside CACHE/shards/
    key: str                # tensor-name prefix inside the shard
    N: int
    T: int
    H: int
    W: int
    fps: float
    has_depth: bool
    tracker: Optional[str] = None
    depth_model: Optional[str] = None
    source: Optional[str] = None
    checksum: str = ""      # "sha256:<hex>" of the record's arrays, see ``record_checksum``
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str) -> "ManifestEntry":
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:  # a required field is missing
            raise StoreError(f"{where}: manifest entry is incomplete ({e})") from None


def record_checksum(arrays: Dict[str, np.ndarray]) -> str:
    """sha256 over name, dtype, shape and bytes of each array, in ``ARRAY_NAMES`` order.

    Hashing the header fields too means a record whose bytes survive but whose shape was
    reinterpreted (a corrupt safetensors header) is still caught."""
    h = hashlib.sha256()
    for name in ARRAY_NAMES:
        arr = arrays.get(name)
        if arr is None:
            continue
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B"))
    return "sha256:" + h.hexdigest()


def store_paths(root: str) -> Tuple[str, str, str]:
    """(store.json, manifest.jsonl, shards/) of the store at ``root``."""
    return (os.path.join(root, STORE_FILE), os.path.join(root, MANIFEST_FILE),
            os.path.join(root, SHARD_DIR))


def read_store_json(root: str) -> Dict[str, Any]:
    """The store header; StoreError when ``root`` is not a traction store."""
    store_json, manifest, _ = store_paths(root)
    if not os.path.isdir(root):
        raise StoreError(f"{root}: not a traction store (no such directory)")
    if not os.path.isfile(manifest):
        raise StoreError(f"{root}: not a traction store (no manifest {MANIFEST_FILE}); "
                         "create one with traction.store.StoreWriter or `traction extract`")
    if not os.path.isfile(store_json):
        raise StoreError(f"{root}: not a traction store (no {STORE_FILE})")
    try:
        with open(store_json, encoding="utf-8") as f:
            header = json.load(f)
    except (OSError, ValueError) as e:
        raise StoreError(f"{store_json}: unreadable store header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StoreError(f"{store_json}: not a traction store header (format is not {FORMAT!r})")
    if int(header.get("version", -1)) > VERSION:
        raise StoreError(f"{store_json}: store version {header.get('version')} is newer than this "
                         f"traction understands ({VERSION}); upgrade traction")
    return header


def read_manifest(path: str) -> Tuple[List[ManifestEntry], int]:
    """All complete entries of manifest.jsonl and the byte length of the complete part.

    A last line without its newline is a torn write of a killed writer: it is ignored (the
    record is absent; a writer re-adds it from the shard's own metadata). A complete line that
    does not parse is real corruption and raises StoreError naming the file and line."""
    with open(path, "rb") as f:
        data = f.read()
    good_end = data.rfind(b"\n") + 1          # 0 when there is no complete line
    entries = []
    for lineno, line in enumerate(data[:good_end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            d = json.loads(line)
        except ValueError:
            raise StoreError(f"{where}: corrupt manifest line (not JSON)") from None
        if not isinstance(d, dict):
            raise StoreError(f"{where}: corrupt manifest line (not a JSON object)")
        entries.append(ManifestEntry.from_dict(d, where))
    return entries, good_end


def shard_metadata(entries: List[ManifestEntry]) -> Dict[str, str]:
    """safetensors metadata (str -> str) that lets a shard rebuild its manifest lines."""
    return {"format": SHARD_FORMAT, "version": str(VERSION),
            "records": json.dumps([dataclasses.asdict(e) for e in entries], ensure_ascii=False)}


def entries_from_shard_metadata(meta: Optional[Dict[str, str]], shard: str) -> List[ManifestEntry]:
    """Inverse of ``shard_metadata``; entries point at ``shard`` (the file's current name)."""
    if not meta or meta.get("format") != SHARD_FORMAT or "records" not in meta:
        raise StoreError(f"{shard}: not a traction shard (metadata lacks {SHARD_FORMAT!r} records)")
    try:
        records = json.loads(meta["records"])
    except ValueError:
        raise StoreError(f"{shard}: shard metadata is not valid JSON") from None
    entries = [ManifestEntry.from_dict(d, shard) for d in records]
    for e in entries:
        e.shard = os.path.basename(shard)
    return entries


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
