"""The ablations of paper §5.3 on a synthetic store: one switch each, the same training budget.

    traction synth trajectories --out /tmp/syn --n 2000 --seed 0
    python benchmarks/ablations.py --data /tmp/syn [--epochs 5] [--model traction_ti]

Trains from scratch (as the paper's ablations do) and prints a table of test top-1 per variant;
writes benchmarks/results/ablations_synthetic.json and .md, and a bar plot .png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _experiment import environment, markdown_table, run_json  # noqa: E402

VARIANTS = [
    ("base", []),
    ("w/o depth", ["model.use_depth=false"]),
    ("w/o visibility", ["model.use_vis=false"]),
    ("w/o sine-enc.", ["model.use_sine=false"]),
    ("w/o pos enc.", ["model.use_pos_enc=false"]),
    ("rel. coords", ["model.relative_coords=true"]),
    ("8 frames", ["model.num_frames=8"]),
    ("16 trajectories", ["data.points=16"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="/tmp/traction_ablations")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--points", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--model", default="traction_ti")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="variant names to run (default all)")
    args = ap.parse_args()

    rows = []
    for name, overrides in VARIANTS:
        if args.only and name not in args.only:
            continue
        points = args.points
        extra = list(overrides)
        if any(o.startswith("data.points=") for o in overrides):
            points = int(overrides[0].split("=")[1])
            extra = []
        res = run_json(["finetune", "--data", args.data, "--out", f"{args.out}/{name.replace(' ', '_').replace('/', '')}",
                        "--epochs", str(args.epochs), "--points", str(points), "--batch-size", str(args.batch_size),
                        "--lr", str(args.lr), "--model", args.model, "--seed", str(args.seed), "--device", "cpu",
                        "--quiet"] + extra)
        rows.append({"variant": name, "overrides": " ".join(overrides) or "-", "top1": res["top1"],
                     "mean_class_acc": res["mean_class_acc"], "wall_s": res["wall_s"]})
        print(f"{name:18s} top-1 {res['top1']:.3f}", file=sys.stderr)
    table = markdown_table(rows, ["variant", "overrides", "top1", "mean_class_acc", "wall_s"])
    print(table)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    meta = {"data": args.data, "epochs": args.epochs, "points": args.points, "batch_size": args.batch_size,
            "lr": args.lr, "model": args.model, "seed": args.seed, **environment()}
    (results / "ablations_synthetic.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (results / "ablations_synthetic.md").write_text(
        f"Ablations (paper §5.3) on synthetic trajectories, trained from scratch: {args.model}, "
        f"{args.epochs} epochs, {args.points} trajectories per clip.\n\n{table}\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh([r["variant"] for r in rows][::-1], [r["top1"] for r in rows][::-1], color="tab:blue")
    ax.set_xlabel("test top-1")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(results / "ablations_synthetic.png", dpi=110)
    print(f"wrote {results / 'ablations_synthetic.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
