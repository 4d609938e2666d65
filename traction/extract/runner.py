"""Bulk extraction on one machine: ``--workers N`` processes extract, the parent writes.

    parent: jobs -> [bounded window of 2 jobs per worker] -> workers (decode, track, depth, lift)
            results -> StoreWriter (the only writer: commits are serialized and atomic)

Each worker loads its models once and always has its next clip queued, so decoding, tracking and
writing overlap; the window bounds the memory held by finished-but-unwritten clips. A rerun skips
clip ids already in the store. A bad input is logged to CACHE/errors.jsonl (path, clip_id, stage,
reason) and the rest goes on (design.md "Errors"). The writer side (``Sink``) is shared with the
Ray runner.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from traction.errors import ConfigError, StoreError
from traction.extract.inputs import InputProblem, Job
from traction.extract.pipeline import ClipResult, ExtractConfig, Extractor, one_line

# Commit pending records at least this often, so a killed run loses at most this much work.
FLUSH_SECONDS = 30.0
# A clip that was in flight when a worker process died twice is logged instead of retried again.
MAX_CRASHES = 2
# Store settings that must match for a rerun to append to an existing store.
_IDENTITY_KEYS = ("tracker", "depth_model", "points", "frames", "sampling", "stride", "max_stride",
                  "max_side", "seed")


@dataclasses.dataclass
class Summary:
    """What one ``traction extract`` call did."""

    out: str
    total: int          # inputs named by this call (clips and unusable inputs)
    skipped: int = 0    # already in the store
    done: int = 0       # written by this call
    failed: int = 0     # logged to errors.jsonl by this call
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def message(self) -> str:
        if self.failed:
            return (f"{self.failed} of {self.total} clips failed; see "
                    f"{os.path.join(self.out, 'errors.jsonl')}")
        return (f"extracted {self.done} clips ({self.skipped} already in the store) into {self.out} "
                f"in {self.seconds:.1f} s")


def open_writer(out: str, config: ExtractConfig, shard_size: int) -> Any:
    """A StoreWriter on ``out``; a ConfigError when an existing store was made with other settings
    (appending would mix trajectories of different trackers, point counts, seeds, ...)."""
    from traction.store import StoreWriter, open_store

    meta = config.store_meta()
    if os.path.isfile(os.path.join(out, "store.json")):
        try:
            header = open_store(out, check=False).meta
        except StoreError:
            header = None  # half-created store: the writer repairs or reports it
        if header is not None:
            for key in _IDENTITY_KEYS:
                if key in header and header[key] != meta[key]:
                    raise ConfigError(f"{out}: store was extracted with {key}={header[key]!r}, this run asks "
                                      f"for {meta[key]!r}; use a new --out directory")
    return StoreWriter(out, shard_size=shard_size, **meta)


class Sink:
    """The writer side of a bulk run: writes results, logs failures, shows progress."""

    def __init__(self, writer: Any, summary: Summary, progress: bool = True) -> None:
        from tqdm.auto import tqdm

        self.writer = writer
        self.summary = summary
        self.run_id = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.bar = tqdm(total=summary.total, initial=summary.skipped, desc="extract", unit="clip",
                        disable=not progress, dynamic_ncols=True, file=sys.stderr,
                        mininterval=0.5 if sys.stderr.isatty() else 5.0)
        self._last_flush = time.monotonic()

    def fail(self, path: str, clip_id: Optional[str], stage: str, reason: str) -> None:
        self.writer.log_error(path, stage, reason, clip_id=clip_id, run=self.run_id)
        self.summary.failed += 1
        self.bar.set_postfix(failed=self.summary.failed, refresh=False)
        self.bar.update(1)

    def problem(self, problem: InputProblem) -> None:
        self.fail(problem.path, None, "input", problem.reason)

    def put(self, result: ClipResult) -> None:
        if not result.ok:
            self.fail(result.path, result.clip_id, result.stage or "decode", result.reason or "unknown error")
            return
        try:
            self.writer.add(result.clip_id, result.trajectories, label=result.label, split=result.split,
                            meta=result.meta)
            if time.monotonic() - self._last_flush > FLUSH_SECONDS:
                self.flush()
        except StoreError as e:
            self.fail(result.path, result.clip_id, "write", one_line(e))
            return
        self.summary.done += 1
        self.bar.update(1)

    def flush(self) -> None:
        self.writer.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def open_run(jobs: Sequence[Job], problems: Sequence[InputProblem], out: str, config: ExtractConfig,
             shard_size: int, progress: bool) -> Iterator[Tuple[List[Job], Sink, Summary]]:
    """The writer side of one bulk run, shared by the local and the Ray runner.

    Opens the store ``out``, drops the jobs already in it (a rerun resumes), logs the unusable
    inputs and yields ``(todo, sink, summary)``; leaving commits every finished clip, also on
    Ctrl-C or an error."""
    writer = open_writer(out, config, shard_size)
    summary = Summary(out=out, total=len(jobs) + len(problems))
    todo = [job for job in jobs if not writer.has(job.clip_id)]
    summary.skipped = len(jobs) - len(todo)
    sink = Sink(writer, summary, progress)
    try:
        for problem in problems:
            sink.problem(problem)
        yield todo, sink, summary
    finally:
        sink.close()
        writer.close()   # commits every finished clip, also on Ctrl-C


# ---------------------------------------------------------------------------------------- workers
_EXTRACTOR: Optional[Extractor] = None
_INIT_ERROR: Optional[BaseException] = None


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (killed by SIGKILL, say): orphans would hold CPUs forever."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _init_worker(config: ExtractConfig, threads: int, parent_pid: int) -> None:
    # Split the cores between workers before any math library starts its thread pool.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    global _EXTRACTOR, _INIT_ERROR
    try:
        import cv2

        cv2.setNumThreads(threads)
        _EXTRACTOR = Extractor(config)
        if "torch" in sys.modules:  # learned models; LK alone never pays for importing torch
            sys.modules["torch"].set_num_threads(threads)
    except Exception as e:  # noqa: BLE001 - reported to the parent with the first job
        # An initializer that raises breaks the whole pool with an opaque message; keep the
        # real reason (missing weights, no CUDA, ...) and hand it back with the first job.
        _INIT_ERROR = e


def _run_job(job: Job) -> ClipResult:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _EXTRACTOR is not None, "worker not initialized"
    return _EXTRACTOR(job)


def _new_pool(config: ExtractConfig, workers: int) -> cf.ProcessPoolExecutor:
    # spawn: a fresh interpreter per worker; forking a parent that holds torch/OpenCV thread
    # pools (or CUDA) is unsafe.
    threads = max(1, (os.cpu_count() or 1) // workers)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_worker, initargs=(config, threads, os.getpid()))


def _run_pool(todo: List[Job], sink: Sink, config: ExtractConfig, workers: int) -> None:
    queue = list(reversed(todo))                     # pop() from the end keeps the input order
    crashes: Dict[str, int] = {}
    window = 2 * workers                             # one running + one queued per worker
    pool = _new_pool(config, workers)
    in_flight: Dict[cf.Future, Job] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < window:
                job = queue.pop()
                in_flight[pool.submit(_run_job, job)] = job
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            suspects = []
            for fut in done:
                job = in_flight.pop(fut)
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    suspects.append(job)
                    continue
                # Any other exception is the worker's setup failing (weights, device): it would
                # fail every clip the same way, so it ends the run (Extractor never raises per clip).
                sink.put(result)
            if suspects:
                # A worker died (segfault, out of memory); any clip in flight may be the cause.
                # Each is retried on a fresh pool; one in flight at a second crash is logged.
                suspects += list(in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                for job in suspects:
                    crashes[job.clip_id] = crashes.get(job.clip_id, 0) + 1
                    if crashes[job.clip_id] >= MAX_CRASHES:
                        sink.fail(job.path, job.clip_id, "worker",
                                  "the worker process died while extracting this clip (crash or out of memory)")
                    else:
                        queue.append(job)
                pool = _new_pool(config, workers)
    except BaseException:  # Ctrl-C or a setup error: don't wait for clips nobody will write
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_inline(todo: List[Job], sink: Sink, config: ExtractConfig) -> None:
    extractor = Extractor(config)
    for job in todo:
        sink.put(extractor(job))


def run_local(jobs: Sequence[Job], problems: Sequence[InputProblem], out: str, config: ExtractConfig, *,
              workers: int = 1, shard_size: int = 64, progress: bool = True) -> Summary:
    """Extract ``jobs`` into the store ``out`` with ``workers`` processes (0: in this process).

    Returns the ``Summary``; failures are logged, never raised. Ctrl-C commits what is done and
    re-raises KeyboardInterrupt."""
    config.validate()
    if workers < 0:
        raise ConfigError(f"--workers {workers}: must be >= 0 (0 runs in this process)")
    start = time.monotonic()
    with open_run(jobs, problems, out, config, shard_size, progress) as (todo, sink, summary):
        if todo:
            if workers == 0:
                _run_inline(todo, sink, config)
            else:
                _run_pool(todo, sink, config, min(workers, len(todo)))
    summary.seconds = time.monotonic() - start
    return summary
