"""What to extract: command-line inputs (files, directories, globs) or a list file -> ``Job``s.

A list file has one clip per line, ``path label [split]`` (mmaction2 / pytorchvideo style,
design.md "Interfaces"); fields may be quoted (shell rules) so labels and paths may hold
spaces; blank lines and ``#`` comments are skipped; relative paths are relative to the list
file's directory.

Clip ids are stable across runs (that is what a resumed extraction matches on) and unique:
- list file: the path as written in the list, extension dropped ("videos/abc.webm" -> "videos/abc");
- a directory or glob: the path relative to the directory (or the glob's fixed prefix), "/"
  separated, extension dropped;
- a single file: its name without extension.

Inputs that do not exist are not fatal: they come back as ``InputProblem``s so the bulk runner
logs them like any other bad input and extracts the rest (design.md "Errors").
"""
from __future__ import annotations

import dataclasses
import glob
import os
import shlex
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from traction.errors import ConfigError

# Containers PyAV/FFmpeg read that datasets ship (SSv2 .webm, K400 .mp4, EK100 .MP4, ...).
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".gif")

DEFAULT_SPLIT = "train"


@dataclasses.dataclass(frozen=True)
class Job:
    """One clip to extract."""

    path: str
    clip_id: str
    label: Optional[str] = None
    split: str = DEFAULT_SPLIT

    def to_dict(self) -> Dict[str, Optional[str]]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class InputProblem:
    """An input that names no readable video (missing file, empty directory, glob without matches)."""

    path: str
    reason: str


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def _strip_ext(rel: str) -> str:
    root, _ = os.path.splitext(rel)
    return root.replace(os.sep, "/")


def _glob_root(pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard ("data/*/x.mp4" -> "data")."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or "."


def _walk_videos(root: str) -> List[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                     if _is_video(f) and not f.startswith("."))
    return found


def expand_inputs(inputs: Sequence[str], *, label: Optional[str] = None,
                  split: str = DEFAULT_SPLIT) -> Tuple[List[Job], List[InputProblem]]:
    """Files, directories (searched recursively for videos) and globs -> jobs, in a stable order.

    A file named explicitly is taken whatever its extension (the decoder judges it); directories
    and globs only yield files with a video extension. Every job gets ``label`` and ``split``.
    """
    pairs: List[Tuple[str, str]] = []          # (path, clip_id)
    problems: List[InputProblem] = []
    for item in inputs:
        item = os.path.expanduser(str(item))
        if os.path.isdir(item):
            videos = _walk_videos(item)
            if not videos:
                problems.append(InputProblem(item, f"directory holds no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...)"))
            pairs.extend((p, _strip_ext(os.path.relpath(p, item))) for p in videos)
        elif os.path.isfile(item):
            pairs.append((item, _strip_ext(os.path.basename(item))))
        elif glob.has_magic(item):
            root = _glob_root(item)
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p) and _is_video(p))
            if not matches:
                problems.append(InputProblem(item, "glob matches no video files"))
            pairs.extend((p, _strip_ext(os.path.relpath(p, root))) for p in matches)
        elif item.endswith(os.sep) or not os.path.splitext(item)[1]:
            problems.append(InputProblem(item, "no such directory"))
        else:
            problems.append(InputProblem(item, "no such file"))
    jobs = _dedupe([Job(p, cid, label, split) for p, cid in pairs])
    return jobs, problems


def read_list_file(list_path: str, *, default_split: str = DEFAULT_SPLIT) -> Tuple[List[Job], List[InputProblem]]:
    """Jobs from a ``path label [split]`` list file (see the module docstring).

    A malformed line is a ConfigError naming ``file:line`` (the whole list is suspect); a listed
    video that does not exist is an ``InputProblem`` (logged, the rest goes on).
    """
    if not os.path.isfile(list_path):
        raise ConfigError(f"{list_path}: list file not found")
    base = os.path.dirname(os.path.abspath(list_path))
    jobs: List[Job] = []
    problems: List[InputProblem] = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            where = f"{list_path}:{lineno}"
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                fields = shlex.split(line, comments=True)
            except ValueError as e:
                raise ConfigError(f"{where}: cannot parse list line ({e})") from None
            if len(fields) not in (2, 3):
                raise ConfigError(f"{where}: expected 'path label [split]', got {len(fields)} field(s); "
                                  "quote fields that contain spaces")
            rel, label = fields[0], fields[1]
            split = fields[2] if len(fields) == 3 else default_split
            path = rel if os.path.isabs(rel) else os.path.join(base, rel)
            clip_id = _strip_ext(os.path.normpath(rel)).lstrip("/")
            if not os.path.isfile(path):
                problems.append(InputProblem(path, f"no such file (listed at {where})"))
                continue
            jobs.append(Job(path, clip_id, label, split))
    return _dedupe(jobs), problems


def _dedupe(jobs: Iterable[Job]) -> List[Job]:
    """Drop repeats of the same file; two different files with one clip id is a ConfigError."""
    by_id: Dict[str, Job] = {}
    out = []
    for job in jobs:
        seen = by_id.get(job.clip_id)
        if seen is None:
            by_id[job.clip_id] = job
            out.append(job)
        elif os.path.realpath(seen.path) != os.path.realpath(job.path):
            raise ConfigError(f"clip id {job.clip_id!r} names two videos ({seen.path} and {job.path}); "
                              "pass their common directory or a list file so ids stay unique")
    return out


def collect_jobs(videos: Sequence[str] = (), list_file: Optional[str] = None, *,
                 label: Optional[str] = None, split: Optional[str] = None) -> Tuple[List[Job], List[InputProblem]]:
    """The jobs of one ``traction extract`` call: the list file's, then the command line's."""
    if not videos and not list_file:
        raise ConfigError("no inputs: give video files, directories or globs, or --list FILE")
    jobs: List[Job] = []
    problems: List[InputProblem] = []
    if list_file:
        j, p = read_list_file(list_file, default_split=split or DEFAULT_SPLIT)
        jobs += j
        problems += p
    if videos:
        j, p = expand_inputs(videos, label=label, split=split or DEFAULT_SPLIT)
        jobs += j
        problems += p
    return _dedupe(jobs), problems
