"""Bulk extraction on a Ray cluster (``traction extract --ray ADDRESS``): the same job as the local
runner, as a Ray Data pipeline (design.md "Extraction": scales out over many machines).

    ray.data.from_items(jobs)                          one block per clip, so every actor gets work
      .map_batches(ExtractActor, ActorPoolStrategy(size=workers), batch_size=1,
                   num_cpus=0.5, num_gpus=1 if cuda else 0)
      .iter_rows()                                     results stream back to the driver
    driver: Sink -> StoreWriter                        the only writer: resumable, errors logged

Actors hold the tracker and depth models (loaded once per actor). They reserve a fraction of a
CPU: actors that reserve whole CPUs leave none for Ray Data's read tasks on small machines and
the job never starts (2 cores, 2 workers). Results travel as JSON plus an .npz blob of plain
arrays — never pickles — so they cross machines and Ray versions unchanged.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from traction.errors import ConfigError, TractionError
from traction.extract.inputs import InputProblem, Job
from traction.extract.pipeline import ClipResult, ExtractConfig, Extractor, one_line
from traction.extract.runner import Summary, open_run
from traction.trajectories import Trajectories

# CPUs each actor reserves (see the module docstring for why it is a fraction).
ACTOR_CPUS = 0.5


# ------------------------------------------------------------------------------- result encoding
def encode_result(result: ClipResult) -> Dict[str, Any]:
    """A ClipResult as one row: {"result": JSON text, "arrays": .npz bytes (b"" on failure)}."""
    head = {"clip_id": result.clip_id, "path": result.path, "label": result.label, "split": result.split,
            "meta": result.meta, "stage": result.stage, "reason": result.reason}
    blob = b""
    traj = result.trajectories
    if traj is not None:
        head.update(height=traj.height, width=traj.width, fps=traj.fps)
        arrays = {"xy": traj.xy, "vis": traj.vis, "queries": traj.queries, "frame_indices": traj.frame_indices}
        if traj.depth is not None:
            arrays["depth"] = traj.depth
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
    return {"result": json.dumps(head, default=str), "arrays": blob}


def decode_result(row: Dict[str, Any]) -> ClipResult:
    """Inverse of ``encode_result``."""
    head = json.loads(row["result"])
    result = ClipResult(clip_id=head["clip_id"], path=head["path"], label=head["label"], split=head["split"],
                        meta=head.get("meta") or {}, stage=head.get("stage"), reason=head.get("reason"))
    blob = row["arrays"]
    if blob is not None and len(blob):
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        result.trajectories = Trajectories(
            xy=arrays["xy"], vis=arrays["vis"], depth=arrays.get("depth"), queries=arrays["queries"],
            height=head["height"], width=head["width"], fps=head["fps"], frame_indices=arrays["frame_indices"])
    return result


# ----------------------------------------------------------------------------------------- actor
class ExtractActor:
    """A Ray Data actor: models loaded once, one job per call (batch_size=1)."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.error: Optional[str] = None
        try:
            self.extractor = Extractor(ExtractConfig(**config))
        except Exception as e:  # noqa: BLE001 - reported to the driver, which stops the run
            # A constructor that raises makes Ray restart the actor forever; report instead.
            self.error = one_line(e)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        rows = []
        for text in batch["job"]:
            job = Job(**json.loads(str(text)))
            if self.error is not None:
                result = ClipResult(job.clip_id, job.path, job.label, job.split, stage="setup", reason=self.error)
            else:
                result = self.extractor(job)
            rows.append(encode_result(result))
        return {"result": np.array([r["result"] for r in rows], dtype=object),
                "arrays": np.array([r["arrays"] for r in rows], dtype=object)}


# ---------------------------------------------------------------------------------------- driver
def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'ray[data]' (or 'traction[ray]')") from None
    return ray


def connect(address: str, *, num_cpus: Optional[int] = None) -> bool:
    """Connect to (or, for "local", start) a Ray cluster. True when this call started Ray, so the
    caller shuts it down; an already initialized Ray is used as it is."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in ("TRACTION_CORE", "TRACTION_NUM_THREADS") if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    try:
        if address == "local":
            # A private single-machine cluster bound to loopback: nothing is exposed on the network.
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1",
                     include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"--ray {address}: cannot connect to a Ray cluster ({one_line(e)})") from None
    return True


def run_ray(jobs: Sequence[Job], problems: Sequence[InputProblem], out: str, config: ExtractConfig, *,
            address: str = "local", workers: int = 1, shard_size: int = 64, progress: bool = True,
            actor_cpus: float = ACTOR_CPUS) -> Summary:
    """Extract ``jobs`` into the store ``out`` with ``workers`` Ray actors (see the module docstring).

    Same contract as ``runner.run_local``: finished clips are skipped, failures logged and
    counted, every written record committed even when the job is interrupted."""
    config.validate()
    if workers < 1:
        raise ConfigError(f"--workers {workers}: a Ray run needs at least 1 actor")
    ray = _import_ray()
    start = time.monotonic()
    started = False
    try:
        with open_run(jobs, problems, out, config, shard_size, progress) as (todo, sink, summary):
            if todo:
                started = connect(address)
                ctx = ray.data.DataContext.get_current()
                ctx.enable_progress_bars = False               # the Sink shows one bar for the whole run
                logging.getLogger("ray.data").setLevel(logging.WARNING)
                ds = ray.data.from_items([{"job": json.dumps(job.to_dict())} for job in todo],
                                         override_num_blocks=len(todo))
                ds = ds.map_batches(
                    ExtractActor, fn_constructor_kwargs={"config": dataclasses.asdict(config)},
                    compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))), batch_size=1,
                    batch_format="numpy", num_cpus=actor_cpus,
                    num_gpus=1 if config.device.startswith("cuda") else 0)
                try:
                    for row in ds.iter_rows():
                        result = decode_result(row)
                        if result.stage == "setup":    # the actor could not load its models
                            raise ConfigError(f"ray actor setup failed: {result.reason}")
                        sink.put(result)
                except TractionError:
                    raise
                except Exception as e:  # noqa: BLE001 - Ray wraps worker failures in many types
                    raise TractionError(f"ray job on {address} failed ({one_line(e)}); finished clips are "
                                        "saved, rerun to resume") from None
    finally:
        if started:              # after the store is committed
            ray.shutdown()
    summary.seconds = time.monotonic() - start
    return summary
