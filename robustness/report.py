"""Robustness report: markdown table + heatmap (corruption x severity) + contact sheet of the corruptions.

    python -m robustness.report --ood DIR --out DIR [--model simple_cnn --weights W.pth] [--labels L.npy]
                                [--npz cifar100.npz] [--index 0] [--seed 0]

Without --weights only the contact sheet is drawn (from image --index of the OOD files, or, with --npz,
generated from that test image with the clean original beside it).
"""
from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, never a window (headless machines, Ray workers)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trainables.atomic import atomic_path, write_text  # noqa: E402
from trainables.corruption_table import SEVERITIES  # noqa: E402
from trainables.errors import UserError  # noqa: E402

from .measure import find_ood, format_table  # noqa: E402
from .ood import DL4DS_ORDER  # noqa: E402


def heatmap_png(result: dict, path: str, title: str = "OOD accuracy") -> str:
    fig = heatmap_figure(result, title)
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous picture, not half a PNG
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def heatmap_figure(result: dict, title: str = "OOD accuracy"):
    """Corruption x severity accuracy in percent, each cell labelled as the table shows it."""
    names = list(result["accuracy"])
    grid = 100 * np.array([result["accuracy"][k] for k in names])
    fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(names) + 1.4))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(5), [f"s{s}" for s in SEVERITIES])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for (i, j), v in np.ndenumerate(grid):
        # One decimal, as in the table: rounding to whole percents showed a 0.5% cell as "0".
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    clean = result.get("clean_acc")
    ax.set_title(f"{title}: mean {100 * result['ood_acc']:.1f}%" + (f", clean {100 * clean:.1f}%" if clean else ""),
                 fontsize=9)
    ax.set_xlabel("severity", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05).set_label("accuracy (%)", fontsize=8)
    fig.tight_layout()
    return fig


def contact_images_generated(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """(19, 5, 32, 32, 3): `image` under every corruption and severity, rows in DL4DS_ORDER (as
    robustness.generate draws them: one Generator per (seed, file index, severity))."""
    from .corrupted_set import corruption_rng
    from .corruptions import corrupt

    return np.stack([np.stack([corrupt(image, name, s, corruption_rng(seed, name, s)) for s in SEVERITIES])
                     for name in DL4DS_ORDER])


def contact_images_ood(arrays, index: int = 0) -> np.ndarray:
    """(files, 5, 32, 32, 3): image `index` of every severity block of every file (memory maps: 15 reads)."""
    n = len(arrays[0]) // 5
    if not 0 <= index < n:
        raise UserError(f"--index must be 0..{n - 1}")
    return np.stack([np.stack([a[(s - 1) * n + index] for s in SEVERITIES]) for a in arrays])


def contact_sheet_png(images: np.ndarray, path: str, clean: np.ndarray | None = None, names=DL4DS_ORDER) -> str:
    """Rows = corruptions, columns = clean + severities 1..5, pixels shown unsmoothed.

    One mosaic image in one axes: 114 separate subplots took seconds to draw.
    """
    rows, cell, gap = len(images), 32, 4
    step = cell + gap
    mosaic = np.full((rows * step - gap, 6 * step - gap, 3), 255, np.uint8)
    for i in range(rows):
        for j in range(6):
            picture = clean if j == 0 else images[i, j - 1]
            if picture is not None:
                mosaic[i * step:i * step + cell, j * step:j * step + cell] = picture
    fig, ax = plt.subplots(figsize=(5.2, 0.55 * rows + 0.5))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([j * step + cell / 2 for j in range(6)], ["clean"] + [f"s{s}" for s in SEVERITIES], fontsize=8)
    ax.set_yticks([i * step + cell / 2 for i in range(rows)], list(names)[:rows], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous picture, not half a PNG
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_report(result: dict, out_dir: str, title: str = "Robustness") -> dict[str, str]:
    """report.md (table) + heatmap.png in out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"heatmap": heatmap_png(result, os.path.join(out_dir, "heatmap.png")),
             "markdown": os.path.join(out_dir, "report.md")}
    write_text(paths["markdown"], f"# {title}\n\nAccuracy (%) per corruption and severity.\n\n"
                                  f"{format_table(result)}\n\n![heatmap](heatmap.png)\n")
    return paths


def _load_model(name: str, weights: str):
    import torch

    from trainables.config import TrainConfig
    from trainables.errors import WeightsError, first_line
    from trainables.models import MODELS, build_model, model_from_config

    if name not in MODELS:
        raise UserError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # A sweep's final model carries its config: the same stem and input-size wrapper as when it was saved.
        saved = state.get("config") if isinstance(state, dict) else None
        model = model_from_config(TrainConfig.from_dict(saved), pretrained=False) if saved else build_model(name)
        model.load_state_dict(state["model"] if isinstance(state, dict) and "model" in state else state)
    except Exception as exc:  # noqa: BLE001 - unreadable, refused by weights_only, or another model's weights
        raise WeightsError(f"'{weights}' is not a state dict for {name}: {first_line(exc)}") from None
    return model


def main(argv=None) -> int:
    from trainables import cli

    p = cli.parser("python -m robustness.report", "Robustness report: contact sheet; with --weights, accuracy per "
                                                  "corruption and severity (report.md + heatmap.png).")
    p.add_argument("--ood", required=True, help="DL4DS, generated or CIFAR-100-C directory")
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="simple_cnn")
    p.add_argument("--weights", help="state dict (or checkpoint with 'model'); without it no accuracy table")
    p.add_argument("--labels", help="labels .npy (default: labels.npy in --ood)")
    p.add_argument("--npz", help="CIFAR-100 .npz: contact sheet generated from its x_test[--index]")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=512)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    paths = find_ood(args.ood)
    if args.npz:
        from .generate import load_split

        x, _ = load_split(args.npz)
        if not 0 <= args.index < len(x):
            raise UserError(f"--index must be 0..{len(x) - 1}")
        images, clean = contact_images_generated(x[args.index], args.seed), x[args.index]
    else:
        images, clean = contact_images_ood([np.load(q, mmap_mode="r") for q in paths], args.index), None
    print(contact_sheet_png(images, os.path.join(args.out, "contact_sheet.png"), clean))
    if args.weights:
        from .measure import measure

        result = measure(_load_model(args.model, args.weights), args.ood, args.labels, batch_size=args.batch_size)
        print(write_report(result, args.out, f"Robustness of {args.model}")["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
