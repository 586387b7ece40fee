"""What each part of the `cnn-gtsrb` recipe gives: the recipe, then the recipe with one part taken away, each
trained on the same data with the same seed and scored on the track-held-out validation split.

python benchmarks/cnn_gtsrb_ablation.py --dataset ../shared/data/gtsrb-train-32 --epochs 6

Runs go to OUTPUT_DIR/<variant> (default runs/ablation-cnn-gtsrb); a finished one is read back, not rerun,
so the script can be stopped and started again. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_hub.cli import setup_logging  # noqa: E402
from tl_hub.config import AugConfig  # noqa: E402
from tl_hub.recipes import AUGMENTATIONS, get_recipe  # noqa: E402

# variant -> (what it changes, the RunConfig changes)
VARIANTS: dict[str, tuple[str, dict]] = {
    "recipe": ("the cnn-gtsrb recipe as it is", {}),
    "grayscale": (
        "grayscale input, as LeNet-5's",
        {"preprocess.grayscale": True, "preprocess.mean": (0.40,), "preprocess.std": (0.26,)},
    ),
    "study-augmentation": (
        "the study's augmentation only (rotation, blur)",
        {f"aug.{k}": v for k, v in AUGMENTATIONS["sign"].__dict__.items()},
    ),
    "no-augmentation": ("no augmentation", {f"aug.{k}": v for k, v in AugConfig().__dict__.items()}),
    "no-label-smoothing": ("label smoothing 0", {"train.label_smoothing": 0.0}),
    "constant-lr": (
        "constant learning rate, no warm-up",
        {"train.scheduler": "constant", "train.lr_warmup_epochs": 0.0},
    ),
    "no-dropout": ("no dropout in the head", {"model.drop_rate": 0.0}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS)
    )
    p.add_argument("--output-dir", type=Path, default=Path("runs/ablation-cnn-gtsrb"))
    args = p.parse_args()
    setup_logging()
    from tl_hub.accelerator import make_accelerator
    from tl_hub.training.trainer import train

    base = get_recipe("cnn-gtsrb").config.replace({"data.dataset": args.dataset})
    if args.epochs:
        base = base.replace(
            {"train.epochs": args.epochs, "train.lr_warmup_epochs": min(1.0, args.epochs / 5)}
        )
    accelerator = make_accelerator()
    rows = []
    for name in args.variants.split(","):
        what, changes = VARIANTS[name]
        out = args.output_dir / name
        metrics_file = out / "model" / "metrics.json"
        if not metrics_file.exists():
            train(base.replace(changes), out, accelerator, resume=out.exists())
        metrics = json.loads(metrics_file.read_text())
        seconds = sum(h["seconds"] for h in metrics["history"])
        rows.append(
            (name, what, metrics["validation"]["accuracy"], metrics["validation"]["macro_f1"], seconds)
        )
        print(f"{name}: validation accuracy {rows[-1][2]:.4f} ({seconds / 60:.1f} min)", flush=True)
    accelerator.end_training()
    print(f"\n{base.train.epochs} epochs, seed {base.train.seed}, validation: whole tracks held out\n")
    print("| variant | what changes | validation accuracy | macro-F1 | training time |")
    print("|---|---|---|---|---|")
    for name, what, acc, f1, seconds in rows:
        print(f"| {name} | {what} | {acc:.4f} | {f1:.4f} | {seconds / 60:.1f} min |")


if __name__ == "__main__":
    main()
