"""Tracker and depth latency per clip and clips/s, traction's implementation beside the official one.

    # the issue's sizes (CoTracker3 offline, 2500 points, 32 frames; VDA-S, 32 frames, input 518)
    PYTHONPATH=. python benchmarks/extractors.py --device cuda [--dtype bf16] [--batch 4] \
        --official-cotracker /tmp/official_cotracker --official-vda /tmp/official_vda --shim-dir /tmp/shim

    # what fits in ~10 minutes on 2 CPU cores (the sizes are recorded in the JSON)
    PYTHONPATH=. python benchmarks/extractors.py --device cpu --threads 1 --frames 8 --points 256 \
        --input-size 224 --reps 2 --warmup 1 --official-cotracker ... --official-vda ... --shim-dir ...

For each network (tracker: CoTracker3 offline; depth: Video Depth Anything) and each resolution
(frames of ``--video``, default shared/videos/bear.mp4, resized to a short side of 240 and 480 px;
a synthetic panning texture when the file is absent) it times traction's implementation and,
where ``--official-cotracker`` / ``--official-vda`` name local checkouts of the official
repositories, the official code on the same frames with the same weights: the synthetic weights
of the parity rule (``weights.py`` of the parity fixtures), or real checkpoints given with
``--cotracker-weights`` / ``--vda-weights``. The official code is imported from those folders at
run time and never copied here. ``--shim-dir`` is put first on ``sys.path`` for the official
code's dependencies that traction does not need: Video-Depth-Anything imports ``einops``,
``easydict`` and ``torchvision.transforms.Compose`` (where torchvision is not installable, a
``torchvision/transforms.py`` whose ``Compose`` applies its transforms in order will do).
Both sides get the uint8 video on the host: the copy to the device and the resize are part of a
clip's cost. Each side gets ``--warmup`` untimed calls, then ``--reps`` timed calls in
alternating order; the median counts.

Reports latency per clip (seconds per call / batch), clips/s, the speed-up (traction's clips/s
over the official's) and the largest output difference (tracks in px of the 384x512 network grid,
visibility agreement; depth in the model's units). Prints a table; writes
benchmarks/results/extractors_<device>.json.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, time_call, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "bear.mp4"
TRACKER_GRID_HW = (384, 512)            # CoTracker3's network input (H, W)
# Tolerances of the parity fixtures (shared/parity/README.md), float32: tracks 1e-2 network px;
# depth 5e-4 at input 280, 1e-3 at 518 (taken here for every size).
TRACK_ATOL, DEPTH_ATOL = 1e-2, 1e-3
# The issue's sizes: runs at other sizes say so in the JSON.
ISSUE_SIZES = {"frames": 32, "points": 2500, "depth_frames": 32, "input_size": 518}
# official Video-Depth-Anything constructor arguments per encoder: (features, out_channels)
OFFICIAL_VDA_CONFIG = {"vits": (64, [48, 96, 192, 384]), "vitb": (128, [96, 192, 384, 768]),
                       "vitl": (256, [256, 512, 1024, 1024])}
TORCH_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# --- inputs ------------------------------------------------------------------------------------

def read_frames(path: Path | None, frames: int) -> tuple[np.ndarray, str]:
    """(frames, H, W, 3) uint8 RGB from the start of ``path`` (looped if the clip is shorter), or a
    panning blocky texture (trackable, with depth structure) when the file is absent."""
    if path is not None and path.is_file():
        import av

        with av.open(str(path)) as container:
            out = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
        video = np.stack(out)                                             # (T_file, H, W, 3)
        return video[np.arange(frames) % len(video)], path.name
    rng = np.random.default_rng(0)
    h, w = 480, 854
    big = np.kron(rng.integers(0, 256, (h // 8 + 2, (w + 2 * frames) // 8 + 2, 3)),
                  np.ones((8, 8, 1))).astype(np.uint8)                    # (H', W', 3) 8x8 blocks
    return np.stack([big[:h, 2 * t: 2 * t + w] for t in range(frames)]), "synthetic"


def resize_short_side(video: np.ndarray, short: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, h, w, 3) with min(h, w) = ``short``, aspect kept, even sides."""
    import cv2

    h, w = video.shape[1:3]
    scale = short / min(h, w)
    size = (int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2)   # (W, H) for cv2
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in video])


def random_queries(points: int, frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(N, 3) float32 (t, x, y) queries: integer frames, positions uniform in the frame."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, frames, points)
    xy = rng.random((points, 2)) * [width - 1, height - 1]
    return np.concatenate([t[:, None], xy], axis=1).astype(np.float32)


# --- weights ------------------------------------------------------------------------------------

def parity_dir(given: str | None) -> Path:
    """Where the parity fixtures' ``weights.py`` lives (as the tests look for it)."""
    root = Path(given or os.environ.get("TRACTION_SHARED", REPO.parent / "shared"))
    return root if (root / "weights.py").exists() else root / "parity"


def synthetic_or_random(spec_model: torch.nn.Module, random_model, parity: Path) -> tuple[dict, str]:
    """The parity weight rule applied to ``spec_model``'s keys, shapes and dtypes (the official
    ones: the implementations share their state-dict layout); without the rule, the random
    initialisation of ``random_model()``. Returns (state dict, description)."""
    rule = parity / "weights.py"
    if rule.is_file():
        spec_ = importlib.util.spec_from_file_location("parity_weights", rule)
        mod = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(mod)
        spec = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in spec_model.state_dict().items()}
        return mod.synthetic_state_dict(spec), f"synthetic (parity rule {rule})"
    return {k: v.clone() for k, v in random_model().state_dict().items()}, "random init (no parity weights.py)"


def tracker_weights(args) -> tuple[dict, str]:
    from traction.tracking import cotracker3

    if args.cotracker_weights:
        return cotracker3.load_state_dict_file(args.cotracker_weights), f"checkpoint {args.cotracker_weights}"
    model = cotracker3.CoTracker3(window_len=60)
    return synthetic_or_random(model, lambda: model, parity_dir(args.parity_dir))


def depth_weights(args) -> tuple[dict, str]:
    from traction.depth import vda

    if args.vda_weights:
        return vda.read_state_dict(args.vda_weights), f"checkpoint {args.vda_weights}"
    with torch.device("meta"):                                    # shapes only, no allocation
        spec_model = vda.build(args.depth_model)
    return synthetic_or_random(spec_model, lambda: vda.build(args.depth_model), parity_dir(args.parity_dir))


# --- official code ------------------------------------------------------------------------------

def import_official(directory: str, shim_dir: str | None) -> None:
    """Make the official checkout (and the stand-ins for its missing dependencies) importable."""
    if not Path(directory).is_dir():
        from traction.errors import ConfigError
        raise ConfigError(f"official checkout {directory!r}: no such directory")
    for path in (directory, shim_dir):
        if path and str(Path(path).resolve()) not in sys.path:
            sys.path.insert(0, str(Path(path).resolve()))


def git_commit(directory: str) -> str | None:
    """HEAD of ``directory`` when it is the top of a git checkout (not a folder inside another)."""
    try:
        out = subprocess.run(["git", "-C", directory, "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != Path(directory).resolve():
        return None
    return lines[1]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: str):
    """Autocast to ``dtype`` on ``device`` (nothing for fp32)."""
    if TORCH_DTYPES[dtype] is None:
        yield
    else:
        with torch.autocast(device.type, dtype=TORCH_DTYPES[dtype]):
            yield


@contextlib.contextmanager
def default_autocast_dtype(device: torch.device, dtype: str):
    """Official VDA opens ``torch.autocast(device_type)`` itself (fp32=False): set the dtype that
    uses, and restore it afterwards."""
    if TORCH_DTYPES[dtype] is None:
        yield
        return
    old = torch.get_autocast_dtype(device.type)
    torch.set_autocast_dtype(device.type, TORCH_DTYPES[dtype])
    try:
        yield
    finally:
        torch.set_autocast_dtype(device.type, old)


# --- timing -------------------------------------------------------------------------------------

def measure(calls: dict, args, device: torch.device, batch: int, frames: int) -> tuple[dict, dict]:
    """Time each side's call (one call = ``batch`` clips): ``--warmup`` untimed calls each, then
    ``--reps`` rounds in alternating order (A B, B A, ...), so a machine whose load drifts weighs on
    both sides alike. Returns ({side: timing entry}, {side: last output}); a failing official side
    is recorded as {"error": ...} and dropped, a failing traction side raises."""
    cuda = device.type == "cuda"
    times = {name: [] for name in calls}
    entries, outputs, work_mem = {}, {}, dict.fromkeys(calls, 0)
    live = dict(calls)

    def call(name: str) -> float | None:
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        try:
            sec = time_call(lambda: outputs.__setitem__(name, live[name]()), reps=1, warmup=0, sync_cuda=cuda)
        except Exception as e:  # noqa: BLE001 - the official code's failure is a result to report
            if name == "traction":
                raise
            print(f"  {name} failed: {type(e).__name__}: {e}", flush=True)
            entries[name] = {"error": f"{type(e).__name__}: {e}"}
            outputs[name] = None
            del live[name]
            return None
        if cuda:   # working memory of the call: both sides' weights stay resident throughout
            work_mem[name] = max(work_mem[name], torch.cuda.max_memory_allocated(device) - before)
        print(f"  {name}: {sec:.3f} s", flush=True)
        return sec

    for name in calls:
        for _ in range(args.warmup):
            if name in live:
                call(name)
    for r in range(args.reps):
        for name in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            if name in live and (sec := call(name)) is not None:
                times[name].append(sec)
    for name in live:
        sec = statistics.median(times[name])
        entries[name] = {"seconds_per_call": round(sec, 4), "latency_s_per_clip": round(sec / batch, 4),
                         "clips_per_s": round(batch / sec, 4), "frames_per_s": round(batch * frames / sec, 2),
                         "seconds_all_reps": [round(t, 4) for t in times[name]]}
        if cuda:
            entries[name]["working_mem_gib"] = round(work_mem[name] / 2 ** 30, 2)
    return entries, outputs


def compare(row: dict) -> None:
    """Throughput ratio (traction over official) from the two timing entries of ``row``."""
    ours, theirs = row["traction"], row.get("official")
    if theirs and "clips_per_s" in theirs:
        row["speedup_vs_official"] = round(ours["clips_per_s"] / theirs["clips_per_s"], 3)


# --- the two networks ---------------------------------------------------------------------------

def bench_tracker(clip: np.ndarray, args, device, state_dict, official) -> dict:
    from traction.tracking import cotracker3

    T, H, W = args.frames, *clip.shape[1:3]
    B = args.batch
    video = torch.from_numpy(np.ascontiguousarray(clip[:T])).permute(0, 3, 1, 2)      # (T, 3, H, W) uint8
    video = video[None].expand(B, -1, -1, -1, -1).contiguous()                       # (B, T, 3, H, W)
    queries = torch.from_numpy(random_queries(args.points, T, H, W))[None].repeat(B, 1, 1)  # (B, N, 3)
    row = {"network": "tracker", "model": "cotracker3-offline", "size": [H, W], "frames": T,
           "points": args.points, "iters": args.iters, "batch": B, "dtype": args.dtype}

    tracker = cotracker3.load(state_dict=state_dict, mode="offline", device=device,
                              dtype=TORCH_DTYPES[args.dtype], iters=args.iters)
    calls = {"traction": lambda: tracker.predict(video, queries)}
    if official is not None:
        from cotracker.predictor import CoTrackerPredictor

        predictor = CoTrackerPredictor(checkpoint=None, window_len=60, v2=False)
        predictor.model.load_state_dict(state_dict, strict=True)
        predictor = predictor.to(device).eval()
        if args.iters != 6:
            row["official_note"] = "the official predictor always runs 6 iterations"

        def official_call():
            with autocast(device, args.dtype):
                return predictor(video.to(device).float(), queries=queries.to(device))

        calls["official"] = official_call

    entries, outputs = measure(calls, args, device, B, T)
    row.update(entries)
    if outputs.get("official") is not None:
        ours_xy, ours_vis = outputs["traction"]["tracks"].float().cpu(), outputs["traction"]["visibility"].cpu()
        xy, vis = outputs["official"][0].float().cpu(), outputs["official"][1].cpu()  # (B, T, N, 2), (B, T, N)
        # in px of the network grid, where the parity tolerance is stated
        to_grid = torch.tensor([(TRACKER_GRID_HW[1] - 1) / (W - 1), (TRACKER_GRID_HW[0] - 1) / (H - 1)])
        err = ((ours_xy - xy).abs() * to_grid).amax().item()
        row["max_abs_diff_tracks_grid_px"] = round(err, 6)
        row["max_abs_diff_tracks_px"] = round((ours_xy - xy).abs().amax().item(), 6)
        row["visibility_agreement"] = round((ours_vis == vis).float().mean().item(), 6)
        row["tolerance_grid_px"] = TRACK_ATOL
        row["within_tolerance"] = err <= TRACK_ATOL if args.dtype == "fp32" else None
    compare(row)
    return row


def bench_depth(clip: np.ndarray, args, device, state_dict, official) -> dict:
    from traction.depth import vda

    T, H, W = args.depth_frames, *clip.shape[1:3]
    B = args.batch
    video = np.ascontiguousarray(clip[:T])                                          # (T, H, W, 3) uint8
    windows = len(vda.window_frame_indices(T))
    wpb = args.windows_per_batch or (B * windows if device.type == "cuda" else 1)
    row = {"network": "depth", "model": args.depth_model, "size": [H, W], "frames": T,
           "input_size": args.input_size, "model_input": list(vda.model_input_size(H, W, args.input_size)),
           "windows": windows, "windows_per_batch": wpb, "batch": B, "dtype": args.dtype}

    model = vda.load(args.depth_model, state_dict=dict(state_dict), device=device,
                     dtype=None if args.dtype == "fp32" else args.dtype)
    calls = {"traction": lambda: model.predict_many([video] * B, input_size=args.input_size,
                                                    windows_per_batch=wpb)}
    if official is not None:
        from video_depth_anything.video_depth import VideoDepthAnything

        encoder = vda.VARIANTS[args.depth_model][0]
        features, channels = OFFICIAL_VDA_CONFIG[encoder]
        net = VideoDepthAnything(encoder=encoder, features=features, out_channels=channels)
        net.load_state_dict(state_dict, strict=True)
        net = net.to(device).eval()

        def official_call():
            # infer_video_depth takes one video; its tqdm bar would break the table
            with default_autocast_dtype(device, args.dtype), contextlib.redirect_stderr(io.StringIO()):
                return [net.infer_video_depth(video, 30.0, input_size=args.input_size, device=device.type,
                                              fp32=args.dtype == "fp32")[0] for _ in range(B)]

        calls["official"] = official_call

    entries, outputs = measure(calls, args, device, B, T)
    row.update(entries)
    if outputs.get("official") is not None:
        ours, theirs = outputs["traction"][0], outputs["official"][0]               # (T, H, W) each
        err = float(np.abs(ours - theirs).max())
        row["max_abs_diff_depth"] = round(err, 6)
        row["depth_max"] = round(float(np.abs(theirs).max()), 4)
        row["tolerance"] = DEPTH_ATOL
        row["within_tolerance"] = err <= DEPTH_ATOL if args.dtype == "fp32" else None
    compare(row)
    return row


# --- report -------------------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    head = (f"{'network':8s} {'res':>5s} {'size':>9s} {'T':>3s} {'pts/in':>6s} {'B':>2s} {'dtype':5s} "
            f"{'ours s/clip':>11s} {'clips/s':>8s} {'official s/clip':>15s} {'clips/s':>8s} {'speedup':>8s} "
            f"{'max|diff|':>10s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        o = r.get("official") or {}
        diff = r.get("max_abs_diff_tracks_grid_px", r.get("max_abs_diff_depth"))
        print(f"{r['network']:8s} {r['resolution']:>5s} {r['size'][1]:>4d}x{r['size'][0]:<4d} {r['frames']:>3d} "
              f"{r.get('points', r.get('input_size')):>6d} {r['batch']:>2d} {r['dtype']:5s} "
              f"{r['traction']['latency_s_per_clip']:>11.3f} {r['traction']['clips_per_s']:>8.3f} "
              f"{o['latency_s_per_clip'] if 'latency_s_per_clip' in o else float('nan'):>15.3f} "
              f"{o['clips_per_s'] if 'clips_per_s' in o else float('nan'):>8.3f} "
              f"{r.get('speedup_vs_official', float('nan')):>7.2f}x "
              f"{diff if diff is not None else float('nan'):>10.2e}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32", help="autocast dtype (both sides)")
    ap.add_argument("--batch", type=int, default=1, help="clips per call (the same clip repeated)")
    ap.add_argument("--networks", default="tracker,depth", help="comma list of tracker, depth")
    ap.add_argument("--resolutions", default="240,480", help="comma list of short sides in px")
    ap.add_argument("--video", default=str(DEFAULT_VIDEO), help="source clip (synthetic frames when absent)")
    ap.add_argument("--frames", type=int, default=ISSUE_SIZES["frames"], help="tracker frames per clip")
    ap.add_argument("--points", type=int, default=ISSUE_SIZES["points"], help="tracker query points per clip")
    ap.add_argument("--iters", type=int, default=6, help="tracker refinement iterations")
    ap.add_argument("--depth-frames", type=int, default=ISSUE_SIZES["depth_frames"])
    ap.add_argument("--depth-model", default="vda-s", choices=["vda-s", "vda-b", "vda-l"])
    ap.add_argument("--input-size", type=int, default=ISSUE_SIZES["input_size"], help="VDA input size")
    ap.add_argument("--windows-per-batch", type=int, default=0,
                    help="VDA windows per network call (0: all of the batch on cuda, 1 on cpu)")
    ap.add_argument("--reps", type=int, default=3, help="timed calls (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls first")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--official-cotracker", default=None, help="checkout of facebookresearch/co-tracker")
    ap.add_argument("--official-vda", default=None, help="checkout of DepthAnything/Video-Depth-Anything")
    ap.add_argument("--shim-dir", default=None, help="put first on sys.path for the official code's imports")
    ap.add_argument("--cotracker-weights", default=None, help="an official offline .pth (default: synthetic)")
    ap.add_argument("--vda-weights", default=None, help="an official VDA .pth (default: synthetic)")
    ap.add_argument("--parity-dir", default=None, help="folder of the parity weights.py (default shared/parity)")
    ap.add_argument("--note", default=None, help="free text stored in the JSON")
    ap.add_argument("--out-dir", default=None, help="where extractors_<device>.json goes (default benchmarks/results)")
    args = ap.parse_args(argv)

    from traction.errors import ConfigError
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    if not networks or set(networks) - {"tracker", "depth"}:
        raise ConfigError(f"--networks {args.networks!r}: expected a comma list of tracker, depth")
    if min(args.batch, args.frames, args.points, args.depth_frames, args.reps) < 1 or args.warmup < 0:
        raise ConfigError("--batch, --frames, --points, --depth-frames and --reps must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    official = {}
    for key, directory in (("tracker", args.official_cotracker), ("depth", args.official_vda)):
        if directory and key in networks:
            import_official(directory, args.shim_dir)
            official[key] = {"dir": str(Path(directory).resolve()), "commit": git_commit(directory)}

    short_sides = [int(s) for s in args.resolutions.split(",")]
    source, source_name = read_frames(Path(args.video) if args.video else None, max(args.frames, args.depth_frames))
    weights = {}
    if "tracker" in networks:
        tracker_sd, weights["tracker"] = tracker_weights(args)
    if "depth" in networks:
        depth_sd, weights["depth"] = depth_weights(args)

    rows = []
    for short in short_sides:
        clip = resize_short_side(source, short)                                       # (T, h, w, 3)
        for net in networks:
            print(f"{net} at {short}p ({clip.shape[2]}x{clip.shape[1]})", flush=True)
            if net == "tracker":
                row = bench_tracker(clip, args, device, tracker_sd, official.get("tracker"))
            else:
                row = bench_depth(clip, args, device, depth_sd, official.get("depth"))
            rows.append({"resolution": f"{short}p", **row})

    sizes = {"frames": args.frames, "points": args.points, "depth_frames": args.depth_frames,
             "input_size": args.input_size}
    payload = {
        "benchmark": "extractors",
        "environment": environment(device),
        "settings": {
            "device": args.device, "dtype": args.dtype, "batch": args.batch, "reps": args.reps,
            "warmup": args.warmup, "video": source_name, **sizes, "iters": args.iters,
            "depth_model": args.depth_model, "weights": weights, "official": official,
            "official_dtype_note": "the official code runs under torch.autocast of the same dtype (tracker) "
                                   "or its own fp32=False autocast set to that dtype (VDA); fp32: no autocast",
            "sizes_differing_from_issue": {k: {"used": v, "issue": ISSUE_SIZES[k]} for k, v in sizes.items()
                                           if v != ISSUE_SIZES[k]},
            "note": args.note,
        },
        "results": rows,
    }
    print()
    print_table(rows)
    path = write_result(f"extractors_{device.type}.json", payload, args.out_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
