"""``traction extract``: videos -> a trajectory store (design.md "Interfaces", "Extraction").

    traction extract VIDEO... | --list FILE --out CACHE [--tracker lk|cotracker3] [--depth none|vda-s|...]
                     [--backend torch|onnx|tensorrt] [--workers N] [--ray ADDRESS] ...

Exit status: 0 when every input was extracted (or already in the store), 1 when any input failed
(each is in CACHE/errors.jsonl; the rest completed), 2 for unusable arguments, 130 on Ctrl-C
(finished clips are committed; a rerun resumes).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from traction.errors import ConfigError, TractionError
from traction.extract.pipeline import BACKENDS, DECODERS, DEPTH_MODELS, SAMPLING_KINDS, TRACKERS, ExtractConfig

EPILOG = """\
inputs: video files, directories (searched recursively), globs ('data/**/*.mp4'), or --list FILE
with one 'path label [split]' per line (relative paths are relative to the list file).
Clip ids come from the list's paths, or from paths relative to the given directory.

A rerun with the same --out skips clips already in the store. Bad inputs are logged to
CACHE/errors.jsonl (path, clip_id, stage, reason) and the rest completes; the exit status is 1
when any input failed.

examples:
  traction extract videos/ --out cache/ --tracker lk --depth none --workers 2
  traction extract --list train.txt --out cache/ --tracker cotracker3 --depth vda-s --device cuda
  traction extract --list train.txt --out cache/ --tracker cotracker3 --depth vda-b --device cuda --backend tensorrt
  traction extract --list train.txt --out cache/ --ray auto --workers 16 --device cuda
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files, directories or globs")
    p.add_argument("--list", dest="list_file", metavar="FILE", help="list file: 'path label [split]' per line")
    p.add_argument("--out", required=True, metavar="CACHE", help="store directory (created; appended to on rerun)")
    g = p.add_argument_group("models")
    g.add_argument("--tracker", choices=TRACKERS, default="lk", help="point tracker (default: lk)")
    g.add_argument("--depth", choices=DEPTH_MODELS, default="none",
                   help="depth model; none gives 2D trajectories (default: none)")
    g.add_argument("--weights-dir", metavar="DIR", help="directory holding the official checkpoints")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="where the tracker and depth networks run: torch, onnx (onnxruntime; exported once "
                        "into $TRACTION_CACHE) or tensorrt (fp16 engine, needs TensorRT and a GPU) (default: torch)")
    g.add_argument("--depth-input-size", type=_positive, default=518, metavar="PX",
                   help="short side of the depth network's input in px, rounded to a multiple of 14 (default: 518)")
    g = p.add_argument_group("trajectories")
    g.add_argument("--points", type=_positive, default=2500, help="trajectories per clip (default: 2500)")
    g.add_argument("--frames", type=_positive, default=32, help="frames per trajectory after resampling (default: 32)")
    g.add_argument("--sampling", choices=SAMPLING_KINDS, default="all",
                   help="which frames to track: all (SSv2-like), stride (K400-like), adaptive (EK100-like)")
    g.add_argument("--stride", type=_positive, default=2, help="frame stride for --sampling stride (default: 2)")
    g.add_argument("--max-stride", type=_positive, default=20, help="stride cap for --sampling adaptive (default: 20)")
    g.add_argument("--max-side", type=_positive, default=None, metavar="PX",
                   help="shrink frames so the longer side is at most PX before tracking")
    g.add_argument("--decoder", choices=DECODERS, default="pyav", help="video decoder (default: pyav)")
    g.add_argument("--seed", type=int, default=0, help="global seed; each clip's query seed derives from it and its id")
    g = p.add_argument_group("labels")
    g.add_argument("--label", metavar="NAME", help="label of every VIDEO given on the command line")
    g.add_argument("--split", metavar="NAME", default=None,
                   help="split of the clips (default: train, or the list file's third column)")
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=_non_negative, default=1,
                   help="extraction processes (or Ray actors); 0 extracts in this process (default: 1)")
    g.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray: 'local' (a private cluster on this machine), 'auto', or ray://host:port")
    g.add_argument("--shard-size", type=_positive, default=64, metavar="K", help="records per shard (default: 64)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``extract`` sub-command to a ``traction`` argparse sub-parsers object."""
    p = subparsers.add_parser(
        "extract", help="extract trajectories from videos into a store",
        description="Extract 2D/2.5D point trajectories from videos into a trajectory store "
                    "(paper section 3, appendix E).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> ExtractConfig:
    return ExtractConfig(tracker=args.tracker, depth=args.depth, weights_dir=args.weights_dir,
                         points=args.points, frames=args.frames, sampling=args.sampling, stride=args.stride,
                         max_stride=args.max_stride, max_side=args.max_side, decoder=args.decoder,
                         device=args.device, seed=args.seed, backend=args.backend,
                         depth_input_size=args.depth_input_size).validate()


def _check_device(device: str) -> None:
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"--device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is available on this machine")


def _check_backend(config: ExtractConfig) -> None:
    """Fail before any worker starts when the chosen backend cannot run here (LK with no depth
    model has no network, so any backend will do)."""
    if config.backend != "torch" and (config.tracker != "lk" or config.depth != "none"):
        from traction.runtime import require_backend

        require_backend(config.backend, config.device)


def run(args: argparse.Namespace) -> int:
    """Run ``traction extract``; returns the exit status (see the module docstring)."""
    from traction.extract.inputs import collect_jobs

    summary = None
    try:
        config = config_from_args(args)
        jobs, problems = collect_jobs(args.videos, args.list_file, label=args.label, split=args.split)
        progress = not args.no_progress
        if args.ray:
            from traction.extract.ray_runner import run_ray

            summary = run_ray(jobs, problems, args.out, config, address=args.ray, workers=max(1, args.workers),
                              shard_size=args.shard_size, progress=progress)
        else:
            _check_device(config.device)
            _check_backend(config)
            from traction.extract.runner import run_local

            summary = run_local(jobs, problems, args.out, config, workers=args.workers,
                                shard_size=args.shard_size, progress=progress)
    except TractionError as e:
        print(f"traction extract: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the store cannot be written (disk full, permissions): stop, keep what is committed
        print(f"traction extract: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"traction extract: interrupted; finished clips are saved in {args.out}, rerun to resume",
              file=sys.stderr)
        return 130
    print(summary.message(), file=sys.stderr if summary.failed else sys.stdout)
    return summary.exit_code


def main(argv: Optional[List[str]] = None) -> int:
    """Stand-alone entry point (``python -m traction.extract``)."""
    parser = argparse.ArgumentParser(
        prog="traction extract", description="Extract point trajectories from videos into a trajectory store.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
