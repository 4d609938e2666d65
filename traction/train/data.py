"""From a trajectory store to model batches (paper §4 "Implementation details", appendix B).

Per clip the dataset yields the raw trajectories (N, T, 4) = (x px, y px, d, v) and (H, W). The
batch builder then does, on the whole batch and in the compiled core (``traction.ops``):

    pad to the largest N              raw (B, N, T, 4), valid (B, N)
    random subset of K per clip       training: K = data.points (512); evaluation: all (or K fixed)
    normalize                         paper §3: x, y / max(H, W); depth to the xy std
    augment                           training only, appendix B

and returns ``Batch(x (B, K, T, 4) float32, padding_mask (B, K) bool, labels (B,), index (B,))``.
Randomness comes from counter-based seeds (run seed, epoch, step), so a run is reproducible
whatever the number of loader workers.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from traction import ops
from traction.config import AugmentConfig, DataConfig, TrainConfig
from traction.errors import StoreError


@dataclasses.dataclass
class Batch:
    x: torch.Tensor              # (B, K, T, 4) normalized (x, y, d, v)
    padding_mask: torch.Tensor   # (B, K) bool, True = padding
    labels: torch.Tensor         # (B,) int64, -1 where the clip has no label in the label set
    index: torch.Tensor          # (B,) int64 store indices

    def to(self, device) -> "Batch":
        return Batch(self.x.to(device, non_blocking=True), self.padding_mask.to(device, non_blocking=True),
                     self.labels.to(device, non_blocking=True), self.index)


class TrajectoryDataset(torch.utils.data.Dataset):
    """Clips ``indices`` of a store as raw arrays; trajectories resampled to ``num_frames``.

    Items are requested as ``(store_index, seed)`` pairs by ``SeededBatchSampler``; the seed rides
    along to the batch builder.
    """

    def __init__(self, store_path: str, indices: Sequence[int], labels: List[str], num_frames: int,
                 reverse_time: bool = False):
        self.store_path = str(store_path)
        self.indices = list(indices)
        self.label_to_index = {l: i for i, l in enumerate(labels)}
        self.num_frames = num_frames
        self.reverse_time = reverse_time
        self._store = None  # opened lazily, once per loader worker

    @property
    def store(self):
        if self._store is None:
            from traction.store import open_store
            self._store = open_store(self.store_path)
        return self._store

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: Tuple[int, int]):
        pos, seed = item
        idx = self.indices[pos]
        rec = self.store[idx]
        traj = rec.trajectories
        if traj.num_frames != self.num_frames:
            traj = traj.resample(self.num_frames)
        if self.reverse_time:
            traj = traj.time_reversed()
        raw = np.empty((traj.num_points, traj.num_frames, 4), np.float32)       # (N, T, 4)
        raw[..., :2] = traj.xy
        raw[..., 2] = traj.depth if traj.depth is not None else 0.0
        raw[..., 3] = traj.vis
        label = self.label_to_index.get(rec.label, -1)
        return raw, (traj.height, traj.width), traj.depth is not None, label, idx, seed


class SeededBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(position, seed)``; shuffled per epoch with a seed of (run seed, epoch).

    With ``rank``/``world_size`` it yields this rank's share (DDP), like DistributedSampler.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.world_size > 1:  # pad so every rank gets the same number of steps
            per = math.ceil(self.n / self.world_size)
            order = np.resize(order, per * self.world_size)[self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        order = self._order()
        for step, start in enumerate(range(0, len(order), self.batch_size)):
            chunk = order[start:start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                break
            seed = (self.seed * 1_000_003 + self.epoch * 10_007 + step) * max(self.world_size, 1) + self.rank
            yield [(int(i), int(seed)) for i in chunk]

    def __len__(self) -> int:
        n = math.ceil(self.n / self.world_size) if self.world_size > 1 else self.n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class BatchBuilder:
    """Collate function: pad, subsample, normalize, augment (see the module docstring)."""

    def __init__(self, points: int, augment: Optional[AugmentConfig], use_depth: bool = True):
        self.points = points          # 0 = keep every trajectory
        self.augment = augment if (augment is not None and augment.enabled) else None
        self.use_depth = use_depth

    def __call__(self, items) -> Batch:
        raws, hws, depths, labels, idxs, seeds = zip(*items)
        B, T = len(raws), raws[0].shape[1]
        n_max = max(r.shape[0] for r in raws)
        raw = np.zeros((B, n_max, T, 4), np.float32)                            # (B, N, T, 4)
        num_valid = np.array([r.shape[0] for r in raws], np.int64)               # (B,)
        for b, r in enumerate(raws):
            raw[b, :r.shape[0]] = r
        hw = np.asarray(hws, np.float32)                                        # (B, 2)
        seed = int(seeds[0])
        if self.points:
            index, keep = ops.sample_subset(num_valid, self.points, seed)        # (B, K), (B, K)
            raw = np.take_along_axis(raw, index[:, :, None, None], axis=1)      # (B, K, T, 4)
            valid = keep
        else:
            valid = np.arange(n_max)[None, :] < num_valid[:, None]               # (B, N)
        has_depth = self.use_depth and all(depths)
        x = ops.normalize(np.ascontiguousarray(raw), hw, has_depth=has_depth, valid=valid)
        if self.augment is not None:
            params = augment_params(self.augment)
            x, valid = ops.augment(x, valid, hw, params, seed + 1)
        return Batch(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(~np.asarray(valid, bool)),
                     torch.tensor(labels, dtype=torch.int64), torch.tensor(idxs, dtype=torch.int64))


def augment_params(cfg: AugmentConfig):
    """``AugmentConfig`` (run config) -> ``traction.ops.AugmentParams`` (compiled core)."""
    fields = {f.name for f in dataclasses.fields(ops.AugmentParams)}
    return ops.AugmentParams(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in fields})


# --------------------------------------------------------------------------- splits and loaders

def resolve_eval_split(store, data: DataConfig) -> str:
    if data.eval_split:
        return data.eval_split
    splits = set(store.splits())
    for s in ("val", "test"):
        if s in splits:
            return s
    raise StoreError(f"{store.root}: no 'val' or 'test' split to evaluate on (splits: {sorted(splits)})")


def split_indices(store, split: str, label_fraction: float = 1.0, seed: int = 0) -> List[int]:
    """Indices of ``split``; with ``label_fraction`` < 1 a per-class seeded subset (at least 1 per class)."""
    idx = store.indices(split)
    if not idx:
        raise StoreError(f"{store.root}: split {split!r} is empty (splits: {sorted(store.splits())})")
    if label_fraction >= 1.0:
        return idx
    rng = np.random.default_rng([seed, 7])
    by_label = {}
    for i in idx:
        by_label.setdefault(store.records[i].label, []).append(i)
    keep = []
    for label in sorted(by_label):
        members = by_label[label]
        k = max(1, int(round(len(members) * label_fraction)))
        keep.extend(sorted(rng.choice(members, size=k, replace=False).tolist()))
    return sorted(keep)


def make_loader(store, indices: Sequence[int], labels: List[str], cfg: TrainConfig, *, train: bool,
                points: Optional[int] = None, reverse_time: bool = False, rank: int = 0,
                world_size: int = 1, batch_size: Optional[int] = None):
    ds = TrajectoryDataset(store.root, indices, labels, cfg.model.num_frames, reverse_time=reverse_time)
    k = points if points is not None else (cfg.data.points if train else cfg.data.eval_points)
    builder = BatchBuilder(k, cfg.augment if train else None, use_depth=cfg.model.use_depth)
    bs = batch_size or cfg.optim.batch_size
    sampler = SeededBatchSampler(len(ds), bs, shuffle=train, seed=cfg.seed, drop_last=False,
                                 rank=rank, world_size=world_size)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=sampler, collate_fn=builder, num_workers=cfg.data.workers,
        persistent_workers=cfg.data.workers > 0, pin_memory=torch.cuda.is_available())
    return loader, sampler
