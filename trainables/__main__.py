"""`python -m trainables`: train one config alone, outside any sweep.

    python -m trainables --config part1.json --data ../shared/data/cifar100.npz --out results/p1 \
        --set lr=0.05 --set epochs=30 [--resume]

Writes DIR/metrics.json (status, config, seed, code commit, data fingerprint, per-epoch history, final
clean test accuracy) and DIR/checkpoint.pt, both atomically after every epoch, so --resume continues.
Exit status: 0 done, 2 bad input (one line `error: ...`), 3 diverged (NaN/inf loss), 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import cli

EXIT_DIVERGED = 3  # 0, 2 and 130: trainables.cli


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser("python -m trainables", "Train one CIFAR-100 config.")
    p.add_argument("--config", help="JSON file of config keys (or a metrics.json/best.json with a 'config' key)")
    p.add_argument("--data", help="a .npz (x_train, y_train, x_test, y_test) or a torchvision CIFAR-100 root")
    p.add_argument("--out", required=True, help="output folder: metrics.json, checkpoint.pt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    return p.parse_args(argv)


def read_config_file(path: str) -> dict:
    from .errors import ConfigError

    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' could not be read as text: {exc}") from None
    if path.endswith((".yaml", ".yml")):  # trainables stays plain PyTorch: YAML belongs to the sweep
        raise ConfigError(f"config file '{path}': write the config as JSON (e.g. a sweep's best.json), "
                          "or pass keys with --set KEY=VALUE")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid JSON: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
        raw = raw["config"]  # a previous run's metrics.json / the sweep's best.json retrains as is
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of config keys, not {type(raw).__name__}")
    return raw


def overrides(pairs: list[str]) -> dict:
    from .errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{pair}' is not KEY=VALUE")
        out[key.strip()] = value.strip()  # strings: TrainConfig.from_dict coerces and checks them
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    # Disk full, unwritable --out: the machine, not a bug. checkpoint.pt is written after every epoch.
    return cli.run(lambda: run(args), after_write_error="Fix that, then continue with --resume",
                   after_interrupt="Finished epochs are saved in checkpoint.pt; continue with --resume")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import checkpoint as ckpt
    from .atomic import git_commit, torch_save, write_json
    from .config import TrainConfig
    from .data import fingerprint, load_arrays
    from .engine import amp_dtype, evaluate, resolve_device, train
    from .errors import ConfigError, DivergedError, UserError

    raw = read_config_file(args.config) if args.config else {}
    raw.update(overrides(args.set))
    if args.data:
        raw["data"] = args.data
    if not raw.get("data"):
        raise ConfigError("no data: pass --data PATH or set 'data' in the config")
    raw["data"] = os.path.abspath(str(raw["data"]))  # artifacts carry absolute paths
    config = TrainConfig.from_dict(raw)

    os.makedirs(args.out, exist_ok=True)
    ckpt_path, metrics_path = os.path.join(args.out, "checkpoint.pt"), os.path.join(args.out, "metrics.json")
    resume = None
    if os.path.exists(ckpt_path):
        if not args.resume:
            raise UserError(f"'{args.out}' already holds checkpoint.pt; pass --resume to continue it "
                            f"or choose another --out")
        resume = ckpt.load(ckpt_path)
        print(f"resuming from epoch {resume['epoch']} of {config.epochs}")
    elif args.resume:
        print(f"no checkpoint in '{args.out}'; starting from epoch 1")

    arrays = load_arrays(config.data, config.download)
    record = {"status": "running", "config": config.to_dict(), "seed": config.seed, "commit": git_commit(),
              "data_fingerprint": fingerprint(config.data), "history": list(resume["history"]) if resume else []}
    write_json(metrics_path, record)

    def report(metrics: dict, state: dict) -> None:
        torch_save(state, ckpt_path)
        record["history"] = state["history"]
        write_json(metrics_path, record)
        tqdm.write(_summary(metrics, config.epochs))

    def progress(steps, epoch):
        return tqdm(steps, desc=f"epoch {epoch}/{config.epochs}", leave=False, unit="batch", dynamic_ncols=True)

    try:
        result = train(config, report, checkpoint=resume, data=arrays, progress=progress)
    except DivergedError as exc:
        record.update(status="diverged", message=str(exc))
        write_json(metrics_path, record)
        print(f"diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    device = resolve_device(config.device)
    test = evaluate(result.model, arrays.x_test, arrays.y_test, config.eval_batch_size, device,
                    config.channels_last, amp_dtype(config.precision, device))
    record.update(status="completed", history=result.history, test_acc=test["acc"], test_loss=test["loss"])
    write_json(metrics_path, record)
    print(f"test_acc {test['acc']:.4f}  test_loss {test['loss']:.4f}  -> {metrics_path}")
    return 0


def _summary(m: dict, epochs: int) -> str:
    parts = [f"epoch {m['epoch']}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in m.items() if k.endswith(("_loss", "_acc"))]
    parts += [f"lr {m['lr']:.3g}", f"{m['epoch_time_s']:.1f}s", f"{m['images_per_s']:.0f} img/s"]
    return "  ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
