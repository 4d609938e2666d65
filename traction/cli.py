"""The ``traction`` command line (design.md "Interfaces").

Every sub-command has ``--help``. Errors a user can cause print one line
``traction: error: <input>: <reason>`` and exit with status 1 (2 for bad usage), never a traceback
(set TRACTION_DEBUG=1 to see one).
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

from traction.errors import TractionError

EPILOG_OVERRIDES = """\
overrides:
  Any config field as key=value (section.field, or a bare field name when unique), e.g.
    model.use_depth=false  use_vis=false  augment.enabled=false  optim.warmup_ratio=0.2
  Ablations of paper section 5.3: use_depth, use_vis, use_sine, use_pos_enc, relative_coords,
  model.num_frames, data.points.
"""


# --------------------------------------------------------------------------- shared flag groups

def _add_train_flags(p: argparse.ArgumentParser, *, finetune: bool) -> None:
    p.add_argument("--data", required=True, help="trajectory store (from `traction extract` or `traction synth`)")
    p.add_argument("--out", required=True, help="run directory (config, metrics, checkpoints, plots)")
    p.add_argument("--config", help="JSON config file (full or partial; same layout as RUN/config.json)")
    p.add_argument("--model", default="traction_s", help="model variant (default traction_s; see `traction models`)")
    if finetune:
        p.add_argument("--init", help="pretraining run or checkpoint to initialise the encoder from")
        p.add_argument("--label-fraction", type=float, help="fraction of labelled training clips (per class)")
    p.add_argument("--epochs", type=int, help="epochs (default: 300 pretrain / 15 finetune, appendix D)")
    p.add_argument("--batch-size", type=int, help="clips per step (default: 512 pretrain / 64 finetune)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-4)")
    p.add_argument("--points", type=int, help="trajectories sampled per clip in training (default 512)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--seed", type=int, help="run seed (default 0)")
    p.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")


def _build_config(args, mode: str):
    from traction import config as C

    base = C.TrainConfig.pretrain_defaults() if mode == "pretrain" else C.TrainConfig.finetune_defaults()
    if args.resume and not args.config and (Path(args.out) / "config.json").is_file():
        saved = json.loads((Path(args.out) / "config.json").read_text())
        base = C.from_dict(C.TrainConfig, {k: v for k, v in saved.items()
                                           if k in {f for f in C.TrainConfig.__dataclass_fields__}})
    cfg = C.load_config_file(args.config, base) if args.config else base
    if args.model != "traction_s":
        from traction.model.registry import model_config
        cfg.model = model_config(args.model)
    flag_map = {"epochs": "optim.epochs", "batch_size": "optim.batch_size", "lr": "optim.lr",
                "points": "data.points", "device": "device", "seed": "seed", "workers": "data.workers",
                "label_fraction": "data.label_fraction"}
    for flag, key in flag_map.items():
        v = getattr(args, flag, None)
        if v is not None:
            C.set_value(cfg, key, v)
    C.apply_overrides(cfg, args.overrides)
    return C.validate(cfg)


def _print_json(obj: Dict) -> None:
    def clean(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    print(json.dumps(clean(obj)))


def _metrics_for_output(m: Dict, labels: Optional[List[str]] = None) -> Dict:
    out = {k: v for k, v in m.items() if k not in ("confusion", "per_class_acc")}
    if labels and m.get("per_class_acc"):
        out["per_class_acc"] = dict(zip(labels, m["per_class_acc"]))
    return out


# --------------------------------------------------------------------------- commands

def cmd_train(args, mode: str) -> int:
    from traction.train.loop import run

    cfg = _build_config(args, mode)
    init = getattr(args, "init", None)
    metrics = run(mode, cfg, args.data, args.out, init=init, resume=args.resume,
                  progress=not args.quiet, model_name=args.model)
    if args.json:
        labels = None
        if mode == "finetune":
            from traction.store import open_store
            labels = list(open_store(args.data).labels)
        _print_json(_metrics_for_output(metrics, labels))
    return 0


def cmd_evaluate(args) -> int:
    from traction.train.protocols import evaluate

    res = evaluate(args.data, args.checkpoint, protocol=args.protocol, split=args.split,
                   train_split=args.train_split, points=args.points, device=args.device or "auto",
                   k=args.k, pairs=args.pairs, batch_size=args.batch_size, save_features=args.save_features,
                   progress=not args.quiet, out_dir=args.out, pool=args.pool)
    if args.json:
        _print_json(res)
    else:
        for k, v in res.items():
            if not isinstance(v, (dict, list)):
                print(f"{k:>18}: {v:.4f}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


def cmd_classify(args) -> int:
    from traction.engine import Engine

    eng = Engine(checkpoint=args.checkpoint, tracker=args.tracker, depth=args.depth, device=args.device,
                 weights_dir=args.weights_dir, points=args.points, backend=args.backend)
    preds = eng.classify(args.video, top_k=args.top_k)
    if args.json:
        _print_json({"video": args.video, "predictions": preds})
    else:
        for p in preds:
            print(f"{p['probability']:7.3f}  {p['label']}")
    return 0


def cmd_fuse(args) -> int:
    from traction.train.fusion import fuse

    res = fuse(args.traj_features, args.vision_features, args.out, epochs=args.epochs, lr=args.lr,
               weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio, seed=args.seed,
               progress=not args.quiet)
    if args.json:
        _print_json(res)
    else:
        for k in ("traj_top1", "vision_top1", "fused_top1"):
            if k in res:
                print(f"{k:>12}: {res[k]:.4f}")
    return 0


def cmd_models(args) -> int:
    from traction.model.registry import create_model, list_models

    for name in list_models():
        m = create_model(name, num_classes=args.num_classes)
        print(f"{name:14s} {m.num_parameters() / 1e6:6.2f}M parameters")
    return 0


def cmd_export(args) -> int:
    from traction.export import export_classifier

    path = export_classifier(args.checkpoint, args.format, args.out, points=args.points, batch=args.batch)
    print(f"wrote {path}")
    return 0


def _hook(module: str, fn: str = "register_cli") -> Optional[Callable]:
    """A sub-command module's ``register_cli(subparsers)``; None if that part is not installed."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, fn, None)


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    from traction import __version__

    parser = argparse.ArgumentParser(
        prog="traction",
        description="Action recognition from sparse 2.5D point trajectories (TrAction): extract trajectories "
                    "from videos, pretrain (masked trajectories), fine-tune, evaluate, classify, export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `traction COMMAND --help` for the options of each command.")
    parser.add_argument("--version", action="version", version=f"traction {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    synth = sub.add_parser("synth", help="make synthetic videos or trajectory clips with labels",
                           description="Synthetic data for tests and demos.")
    synth_sub = synth.add_subparsers(dest="synth_kind", metavar="KIND")
    for module in ("traction.synth.trajectories", "traction.synth.videos"):
        hook = _hook(module)
        if hook:
            hook(synth_sub)

    hook = _hook("traction.extract.cli")
    if hook:
        hook(sub)

    for mode, help_ in (("pretrain", "masked-trajectory pretraining (MAE, paper section 3)"),
                        ("finetune", "supervised fine-tuning of the classifier")):
        p = sub.add_parser(mode, help=help_, description=help_, epilog=EPILOG_OVERRIDES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_train_flags(p, finetune=mode == "finetune")
        p.set_defaults(func=lambda a, m=mode: cmd_train(a, m))

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a store split",
                       description="Protocols: top1 (classifier), knn and linear (frozen features), "
                                   "chirality (time-reversed clips + per-pair linear probes).")
    p.add_argument("--data", required=True, help="trajectory store")
    p.add_argument("--checkpoint", required=True, help="checkpoint stem, file or run directory")
    p.add_argument("--protocol", default="top1", choices=["top1", "knn", "linear", "chirality"])
    p.add_argument("--split", help="split to evaluate (default: val if present, else test)")
    p.add_argument("--train-split", default="train", help="split the knn/linear/chirality probes train on")
    p.add_argument("--points", type=int, default=0, help="trajectories per clip (default 0 = all)")
    p.add_argument("--k", type=int, default=20, help="neighbours for --protocol knn (default 20)")
    p.add_argument("--pool", choices=["cls", "mean"],
                   help="features for knn/linear/chirality: [CLS] or mean of trajectory tokens "
                        "(default: mean for knn as in paper appendix C, cls otherwise)")
    p.add_argument("--pairs", help="chiral pairs 'a:b,c:d' (default: the store's, else found by label names)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda or auto")
    p.add_argument("--save-features", help="write [CLS] features of the split to this .safetensors file")
    p.add_argument("--out", help="directory for plots (confusion matrix)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("classify", help="classify a video with a trained checkpoint")
    p.add_argument("video")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--tracker", default="lk", help="lk or cotracker3 (default lk)")
    p.add_argument("--depth", default="none", help="none, vda-s, vda-b or vda-l (default none)")
    p.add_argument("--weights-dir", help="directory with tracker/depth weights")
    p.add_argument("--points", type=int, default=2500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", choices=("torch", "onnx", "tensorrt"), default="torch",
                   help="where the tracker, depth and classifier networks run: torch, onnx (onnxruntime) or "
                        "tensorrt (fp16 engines; needs TensorRT and a GPU) (default torch)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("fuse", help="late fusion of trajectory and vision features (paper appendix C/D)",
                       description="Trains one linear layer on concatenated frozen features. Feature files are "
                                   ".safetensors with 'features' (M, D), 'labels' (M,) int and 'split' (M,) int "
                                   "(0 train, 1 val, 2 test), plus metadata 'clip_ids' (JSON list) to align rows.")
    p.add_argument("--traj-features", required=True)
    p.add_argument("--vision-features", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight-decay", type=float, default=5e-2)
    p.add_argument("--warmup-ratio", type=float, default=0.4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_fuse)

    hook = _hook("traction.viz")
    if hook:
        hook(sub)

    p = sub.add_parser("export", help="export a classifier to ONNX / AOTInductor / TensorRT")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", required=True, choices=["onnx", "aoti", "tensorrt"])
    p.add_argument("--out", required=True)
    p.add_argument("--points", type=int, default=2500, help="trajectories per clip in the exported graph")
    p.add_argument("--batch", type=int, default=1)
    p.set_defaults(func=cmd_export)

    hook = _hook("traction.demo")
    if hook:
        hook(sub)

    p = sub.add_parser("models", help="list model variants and their parameter counts")
    p.add_argument("--num-classes", type=int, default=174)
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without its sub-command (e.g. `traction synth`)
        target = parser if args.command is None else parser._subparsers._group_actions[0].choices[args.command]
        target.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except (TractionError, FileNotFoundError, FloatingPointError) as e:
        if os.environ.get("TRACTION_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"traction: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("traction: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
