"""Reading a trajectory store: ``open_store(path)`` -> ``TrajectoryStore``; ``store[i]`` -> ``Record``.

Opening reads only store.json and the manifest; a record's shard is opened (header + memory map)
when the record is first read. Every read checks the record's sha256 against its manifest entry.
"""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Dict, Iterator, List, Optional, Set

import numpy as np

from traction.errors import CorruptRecord, StoreError
from traction.store.format import (ARRAY_NAMES, ManifestEntry, read_manifest, read_store_json,
                                   record_checksum, store_paths)
from traction.trajectories import Trajectories

# Open shard handles kept per store; a reader streams through shards, so a few suffice.
_MAX_OPEN_SHARDS = 8


@dataclasses.dataclass
class Record:
    """One clip of the store."""

    clip_id: str
    label: Optional[str]
    split: str
    trajectories: Trajectories
    meta: Dict[str, Any]      # tracker, depth_model, source, shard and the entry's ``extra`` keys


def _load_entries(root: str) -> List[ManifestEntry]:
    """Manifest entries with later entries of a clip id replacing earlier ones (overwrite)."""
    _, manifest, _ = store_paths(root)
    entries, _ = read_manifest(manifest)
    latest: Dict[str, ManifestEntry] = {}
    for e in entries:
        latest[e.clip_id] = e  # dict keeps the first position, so indices stay stable on overwrite
    return list(latest.values())


class TrajectoryStore:
    """A read-only view of a store directory (see ``traction.store.format`` for the layout)."""

    def __init__(self, root: str, *, check: bool = True) -> None:
        self.root = os.fspath(root)
        self.header = read_store_json(self.root)
        self.check = check
        self.records: List[ManifestEntry] = _load_entries(self.root)
        self._index = {e.clip_id: i for i, e in enumerate(self.records)}
        self._handles: "collections.OrderedDict[str, Any]" = collections.OrderedDict()

    # ------------------------------------------------------------------ manifest views
    def __len__(self) -> int:
        return len(self.records)

    @property
    def meta(self) -> Dict[str, Any]:
        """Store-level metadata given to the writer (tracker, depth_model, ...), and created-at."""
        return {k: v for k, v in self.header.items() if k not in ("format", "version")}

    @property
    def clip_ids(self) -> Set[str]:
        return set(self._index)

    @property
    def labels(self) -> List[str]:
        """Sorted distinct labels (unlabeled records are left out)."""
        return sorted({e.label for e in self.records if e.label is not None})

    @property
    def label_to_index(self) -> Dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def splits(self) -> List[str]:
        return sorted({e.split for e in self.records})

    def indices(self, split: Optional[str] = "train") -> List[int]:
        """Record indices of ``split`` (all records for None), in store order."""
        return [i for i, e in enumerate(self.records) if split is None or e.split == split]

    def index_of(self, clip_id: str) -> int:
        try:
            return self._index[clip_id]
        except KeyError:
            raise StoreError(f"{self.root}: no clip {clip_id!r} in the store") from None

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._index

    # ------------------------------------------------------------------ records
    def __getitem__(self, i: int) -> Record:
        n = len(self.records)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"store indices must be integers, got {type(i).__name__}; "
                            "use store.get(clip_id) for clip ids")
        if not -n <= i < n:
            raise IndexError(f"record index {i} out of range for a store of {n} records")
        return self._read(self.records[int(i)])

    def get(self, clip_id: str) -> Record:
        return self[self.index_of(clip_id)]

    def __iter__(self) -> Iterator[Record]:
        for e in self.records:
            yield self._read(e)

    def _shard(self, name: str) -> Any:
        from safetensors import safe_open

        handle = self._handles.get(name)
        if handle is not None:
            self._handles.move_to_end(name)
            return handle
        path = os.path.join(store_paths(self.root)[2], name)
        if not os.path.isfile(path):
            raise StoreError(f"{path}: shard file is missing (referenced by {self.root}/manifest.jsonl); "
                             "the store is incomplete — re-run the extraction to restore it")
        try:
            handle = safe_open(path, framework="numpy")
        except Exception as e:  # safetensors raises its own SafetensorError on truncation/garbage
            raise CorruptRecord(f"{path}: unreadable shard ({e})") from None
        self._handles[name] = handle
        while len(self._handles) > _MAX_OPEN_SHARDS:
            self._handles.popitem(last=False)
        return handle

    def read_arrays(self, entry: ManifestEntry) -> Dict[str, np.ndarray]:
        """The raw arrays of one record, checksum-verified (when the store was opened with check)."""
        try:
            handle = self._shard(entry.shard)
        except CorruptRecord as e:
            raise CorruptRecord(f"clip {entry.clip_id!r}: {e}") from None
        names = [n for n in ARRAY_NAMES if n != "depth" or entry.has_depth]
        arrays = {}
        for name in names:
            try:
                arrays[name] = handle.get_tensor(f"{entry.key}/{name}")
            except Exception:
                raise CorruptRecord(f"clip {entry.clip_id!r}: shard {entry.shard} lacks tensor "
                                    f"{entry.key}/{name}") from None
        if self.check and record_checksum(arrays) != entry.checksum:
            raise CorruptRecord(f"clip {entry.clip_id!r}: checksum mismatch in shard "
                                f"{os.path.join(self.root, 'shards', entry.shard)} (the file is corrupt)")
        return arrays

    def _read(self, entry: ManifestEntry) -> Record:
        a = self.read_arrays(entry)
        traj = Trajectories(xy=a["xy"], vis=a["vis"], depth=a.get("depth"), queries=a["queries"],
                            height=entry.H, width=entry.W, fps=entry.fps,
                            frame_indices=a["frame_indices"])
        meta = {"tracker": entry.tracker, "depth_model": entry.depth_model, "source": entry.source,
                "shard": entry.shard, **entry.extra}
        return Record(clip_id=entry.clip_id, label=entry.label, split=entry.split,
                      trajectories=traj, meta=meta)

    # ------------------------------------------------------------------ integrity
    def verify(self) -> List[str]:
        """Read every record; one line per problem (missing shard, corrupt bytes, bad shape)."""
        problems = []
        for e in self.records:
            try:
                a = self.read_arrays(e)
                if a["xy"].shape != (e.N, e.T, 2):
                    problems.append(f"clip {e.clip_id!r}: xy shape {a['xy'].shape} != manifest "
                                    f"(N, T) = ({e.N}, {e.T})")
            except StoreError as err:
                problems.append(str(err))
        return problems

    # ------------------------------------------------------------------ misc
    def __getstate__(self) -> Dict[str, Any]:
        # Memory-mapped shard handles don't pickle (DataLoader workers); each process reopens.
        state = self.__dict__.copy()
        state["_handles"] = collections.OrderedDict()
        return state

    def __repr__(self) -> str:
        return (f"TrajectoryStore({self.root!r}, {len(self)} records, splits={self.splits()}, "
                f"{len(self.labels)} labels)")


def open_store(path: "str | os.PathLike[str]", *, check: bool = True) -> TrajectoryStore:
    """Open the store at ``path`` for reading. ``check=False`` skips the per-record checksum."""
    return TrajectoryStore(os.fspath(path), check=check)
