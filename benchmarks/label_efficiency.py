"""Masked-trajectory pretraining vs. training from scratch with 5% of the labels (paper Table 4a,
at small scale): the same fine-tuning budget for both, pretraining on all training clips without
their labels.

    traction synth trajectories --out /tmp/syn --n 2000 --seed 0
    python benchmarks/label_efficiency.py --data /tmp/syn

Writes benchmarks/results/label_efficiency_synthetic.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _experiment import environment, markdown_table, run_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="/tmp/traction_label_efficiency")
    ap.add_argument("--label-fraction", type=float, default=0.05)
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (both arms)")
    ap.add_argument("--points", type=int, default=128, help="trajectories per clip in fine-tuning")
    ap.add_argument("--pretrain-points", type=int, default=256,
                    help="trajectories per clip in pretraining: at mask 0.9 the encoder sees a tenth of them")
    ap.add_argument("--pretrain-lr", type=float, default=5e-4)
    ap.add_argument("--model", default="traction_s")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--pretrained", help="reuse this pretraining run instead of pretraining again")
    args = ap.parse_args()

    common = ["--model", args.model, "--device", "cpu", "--quiet"]
    # Both arms are scored on their last epoch (no checkpoint picked on the test split); evaluating
    # only then also keeps the runs short.
    pretrained = args.pretrained or f"{args.out}/pretrain"
    if args.pretrained:
        pre = json.loads((Path(pretrained) / "last.json").read_text())["metrics"]
    else:
        pre = run_json(["pretrain", "--data", args.data, "--out", pretrained, "--epochs",
                        str(args.pretrain_epochs), "--batch-size", "64", "--lr", str(args.pretrain_lr),
                        "--points", str(args.pretrain_points), f"eval_every={args.pretrain_epochs}"] + common)
    rows = []
    for seed in args.seeds:
        for arm, init in (("from scratch", []), ("MAE-pretrained", ["--init", pretrained])):
            res = run_json(["finetune", "--data", args.data, "--out", f"{args.out}/{arm.split()[0]}_{seed}",
                            "--epochs", str(args.epochs), "--batch-size", "16", "--label-fraction",
                            str(args.label_fraction), "--seed", str(seed), "--points", str(args.points),
                            f"eval_every={args.epochs}"] + init + common)
            rows.append({"arm": arm, "seed": seed, "top1": res["top1"], "mean_class_acc": res["mean_class_acc"],
                         "num_clips": res["num_clips"], "wall_s": res["wall_s"]})
            print(f"{arm:16s} seed {seed}: top-1 {res['top1']:.3f}", file=sys.stderr)
    for arm in ("from scratch", "MAE-pretrained"):
        mine = [r for r in rows if r["arm"] == arm]
        rows.append({"arm": arm, "seed": "mean", "top1": sum(r["top1"] for r in mine) / len(mine),
                     "mean_class_acc": sum(r["mean_class_acc"] for r in mine) / len(mine),
                     "num_clips": mine[0]["num_clips"], "wall_s": sum(r["wall_s"] for r in mine)})
    table = markdown_table(rows, ["arm", "seed", "top1", "mean_class_acc", "num_clips", "wall_s"])
    print(table)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    meta = {**vars(args), "pretrain_final_loss": pre["loss"], **environment()}
    (results / "label_efficiency_synthetic.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (results / "label_efficiency_synthetic.md").write_text(
        f"{int(args.label_fraction * 100)}% labels, {args.model}, pretraining {args.pretrain_epochs} epochs "
        f"(MAE, mask 0.9, {args.pretrain_points} trajectories per clip, all training clips without labels), "
        f"fine-tuning {args.epochs} epochs on {args.points} trajectories per clip for both arms; last-epoch test accuracy.\n\n{table}\n")


if __name__ == "__main__":
    main()
