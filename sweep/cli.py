"""Command line of orchestrator.py: flags → validated inputs → sweep.pipeline. Bad input: one line, exit 2."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from trainables.errors import UserError, write_error_message

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit is 2 too, but with a usage block; keep it one line
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="orchestrator.py",
        description="Run a hyperparameter sweep for a CIFAR-100 classifier: YAML search space → Ray Tune "
                    "(Optuna sampler + ASHA early stopping) → best config retrained → submission_ood.csv + report.",
    )
    p.add_argument("--space", required=True, help="search space YAML (see search_spaces/README.md)")
    p.add_argument("--data", help="CIFAR-100 source: a .npz (x_train, y_train, x_test, y_test) or a torchvision "
                                  "root folder; overrides the YAML's data.path")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-100 with torchvision into --data if it is missing (once, before any trial)")
    p.add_argument("--ood-dir", help="folder with distortion00.npy … distortion18.npy; when given, the final model's "
                                     "predictions are written as submission_ood.csv")
    p.add_argument("--results-dir", default="results", help="where results/<sweep name>/ goes (default: results)")
    p.add_argument("--num-samples", type=int, help="number of trials (overrides trials.num_samples)")
    p.add_argument("--max-concurrent", type=int, help="trials running at once (overrides trials.max_concurrent)")
    p.add_argument("--smoke-test", action="store_true",
                   help="the same path shrunk by the YAML's smoke section: about a minute on a CPU")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep of the same name: finished "
                                                        "trials are kept, the sampler keeps what it learned")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 10.0.0.5:6379 or 'auto') instead of "
                                     "starting Ray on this machine")
    p.add_argument("--storage", help="shared storage for trial checkpoints (a path every node sees, or a cloud URI); "
                                     "required with a multi-node --address")
    p.add_argument("--wandb", choices=("off", "offline", "online"), default="offline",
                   help="compare trials in wandb: offline (default, no key or network needed), online, or off")
    p.add_argument("--no-retrain", action="store_true", help="stop after the sweep: no retrain, no submission")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one YAML setting by its key path, e.g. --set resources.gpu=0 "
                        "--set fixed.epochs=10 --set params.lr.high=0.1 (repeatable; values read as YAML)")
    p.add_argument("--cpus", type=int, help="CPUs local Ray may use (default: all of this machine's)")
    return p


def _overrides(args) -> dict:
    out = {}
    if args.num_samples is not None:
        out["trials.num_samples"] = args.num_samples
    if args.max_concurrent is not None:
        out["trials.max_concurrent"] = args.max_concurrent
    if args.data:
        out["data.path"] = args.data
    if args.download:
        out["data.download"] = True
    if args.ood_dir:
        out["data.ood_dir"] = args.ood_dir
    import yaml  # values as YAML would read them: 0.1 is a number, [1, 2] a list, true a bool

    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set trials.num_samples=8")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({' '.join(str(exc).split())})") from None
    return out


def _check_flags(args) -> None:
    if args.storage and not args.address and "://" not in args.storage and not os.path.isabs(args.storage):
        args.storage = os.path.abspath(args.storage)
    for flag, value in (("--num-samples", args.num_samples), ("--max-concurrent", args.max_concurrent),
                        ("--cpus", args.cpus)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    if args.cpus and args.address:
        raise UserError("--cpus sizes the local Ray started on this machine; with --address the cluster decides")
    if args.download and args.data and os.path.isfile(args.data):
        raise UserError(f"--download fetches CIFAR-100 into a folder, but --data {args.data} is a file; "
                        f"drop --download, or give a folder")
    if not os.path.isfile(args.space):
        raise UserError(f"--space {args.space}: no such file")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "python orchestrator.py " + " ".join(shlex.quote(a) for a in argv)
    try:
        _check_flags(args)
        if not args.address:
            # A laptop sweep has no business listening on the network: unset, local Ray binds every interface.
            # Ray reads this once at import (it also forbids joining nodes, which a local run never does).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        from . import pipeline  # late: Ray import costs seconds; --help and bad flags answer at once

        return pipeline.run(args, _overrides(args), command)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # disk full, unwritable results folder: the machine, not a bug
        message = write_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}. Fix that, then run: {_again(args, command)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        done = "Finished trials are saved; continue with" if _resumable(args) else "Nothing was started; run again with"
        print(f"\ninterrupted. {done}:\n  {_again(args, command)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resumable(args) -> bool:
    return args.resume or getattr(args, "sweep_started", False)  # the pipeline sets it once sweep.json is written


def _again(args, command: str) -> str:
    """The command that continues from here: with --resume once the sweep has a results folder."""
    return command + " --resume" if _resumable(args) and not args.resume else command
