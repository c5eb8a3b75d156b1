"""Command line of orchestrator.py: flags → validated inputs → sweep.pipeline. Bad input: one line, exit 2."""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

from trainables import cli
from trainables.errors import UserError

from .outcome import StopReason

EXIT_NO_MODEL = 3  # no model: every trial errored or had no finite metric, or the retrain diverged (1 is a crash)
EXIT_USAGE = cli.EXIT_USAGE
EXIT_RESUME = 75  # not finished: time limit or a scheduler's signal; run the printed command (job chains do)
EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED  # Ctrl-C


EXIT_STATUSES = f"""exit status:
  0    done: sweep, retrain, submission, report
  {EXIT_NO_MODEL}    no model: every trial errored or ended without a finite metric, or the retrain diverged
       (one line says the commonest error; trials.csv and the report are written)
  {EXIT_USAGE}    bad input (a flag, the YAML, data, weights), or the first trials all made the same such
       mistake (stopped there; --resume continues once it is fixed): one line, nothing computed is lost
  {EXIT_RESUME}   not finished: --time-limit or a scheduler's signal; results so far are written, run the printed
       command (--resume) to continue
  {EXIT_INTERRUPTED}  Ctrl-C: every finished epoch kept; the command to continue is printed"""


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "orchestrator.py",
        "Run a hyperparameter sweep for a CIFAR-100 classifier: YAML search space → Ray Tune "
        "(Optuna sampler + ASHA early stopping) → best config retrained → submission_ood.csv + report.",
        epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument("--no-robustness", action="store_true",
                   help="skip the robustness report of the final model (generated corruptions of the test set; "
                        "the YAML's ood_val.test_images sets its size)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="e.g. 1h50m: no epoch starts that cannot end before it; then results so far are written "
                        f"and the process exits with status {EXIT_RESUME} and the command to continue (--resume). "
                        "SIGTERM, SIGUSR1 and SIGUSR2 (a scheduler's warning) do the same")
    p.add_argument("--plan", action="store_true",
                   help="print the plan (trials, epochs with ASHA's expected cut, wall time when measured) and exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one YAML setting by its key path, e.g. --set resources.gpu=0 "
                        "--set fixed.epochs=10 --set params.lr.high=0.1 (repeatable; values read as YAML)")
    p.add_argument("--cpus", type=int, help="CPUs local Ray may use (default: all of this machine's)")
    # warm start (sweep/warm_start.py)
    p.add_argument("--warm-start", action="append", default=[], metavar="DIR",
                   help="an earlier sweep's results folder (repeatable): its trials that fit this space are told to "
                        "the sampler, the best run first; the rest are dropped (said in one line)")
    p.add_argument("--warm-start-top", type=int, default=3, metavar="K",
                   help="how many of the earlier best configs run first (default 3; 0: only tell the sampler)")
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
    if args.time_limit is not None:
        from .plan import parse_duration

        try:
            args.time_limit_s = parse_duration(args.time_limit)
        except ValueError as exc:
            raise UserError(f"--time-limit {exc}") from None
        if args.time_limit_s < 10:
            raise UserError(f"--time-limit {args.time_limit}: {args.time_limit_s:g} s is less than the 10 s a sweep "
                            f"needs to save and stop; allowed: 10 s or more (e.g. 1h50m)")
    if args.warm_start_top < 0:
        raise UserError(f"--warm-start-top {args.warm_start_top}: must be 0 or more")
    if args.cpus and args.address:
        raise UserError("--cpus sizes the local Ray started on this machine; with --address the cluster decides")
    if args.download and args.data and os.path.isfile(args.data):
        raise UserError(f"--download fetches CIFAR-100 into a folder, but --data {args.data} is a file; "
                        f"drop --download, or give a folder")
    if args.data and not args.download and not os.path.exists(args.data):
        raise UserError(f"--data {args.data} does not exist; give a CIFAR-100 .npz (x_train, y_train, x_test, y_test) "
                        f"or a torchvision CIFAR-100 folder, or add --download to fetch CIFAR-100 into that folder")
    if os.path.isdir(args.space):
        found = sorted(f for f in os.listdir(args.space) if f.endswith((".yaml", ".yml")))
        raise UserError((f"--space {args.space} is a directory; give one search space YAML file in it: "
                         + ", ".join(os.path.join(args.space, f) for f in found)) if found else
                        f"--space {args.space} is a directory with no .yaml file in it; give a search space YAML file "
                        f"(see search_spaces/README.md)")
    if not os.path.isfile(args.space):
        raise UserError(f"--space {args.space}: no such file")


def request_from(args, command: str):
    from .api import SweepRequest

    return SweepRequest(
        space=args.space, overrides=_overrides(args), smoke=args.smoke_test, results_dir=args.results_dir,
        resume=args.resume, address=args.address, storage=args.storage, wandb=args.wandb,
        retrain=not args.no_retrain, robustness=not args.no_robustness, cpus=args.cpus,
        time_limit_s=getattr(args, "time_limit_s", None), job_s=getattr(args, "time_limit_s", None),
        warm_start=tuple(args.warm_start), warm_start_top=args.warm_start_top,
        plan_only=args.plan, command=command)


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "python orchestrator.py " + " ".join(shlex.quote(a) for a in argv)
    state = {"started": args.resume}  # set once the sweep has a results folder: then the command gets --resume

    def again() -> str:
        return _again(args, command, state["started"])

    def done() -> str:
        return "Finished trials are saved; continue with" if state["started"] else "Nothing was started; run again with"

    def sweep() -> int:
        _check_flags(args)
        if not args.address:
            # A laptop sweep has no business listening on the network: unset, local Ray binds every interface.
            # Ray reads this once at import (it also forbids joining nodes, which a local run never does).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        from .api import run_sweep  # late: Ray import costs seconds; --help and bad flags answer at once

        outcome = run_sweep(request_from(args, command))
        # Done with the work: a scheduler's signal arriving now (SLURM's warning can come late) must not kill
        # the process before it says how it ended (it was seen exiting 138 right after a finished sweep).
        if as_program:  # (not when called in-process, e.g. by tests: their process goes on)
            for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, lambda signum, frame: None)
        state["started"] = outcome.started
        if outcome.no_model:
            print(f"error: {outcome.no_model}", file=sys.stderr)
            return EXIT_NO_MODEL
        if outcome.finished or args.plan:
            return 0
        if outcome.stop_reason is StopReason.CTRL_C:  # the API caught it to save the results: same message, status
            raise KeyboardInterrupt
        print(f"\nnot finished ({outcome.stop_reason}). {done()}:\n  {again()}", file=sys.stderr)
        return EXIT_RESUME

    # Disk full, unwritable results folder: the machine, not a bug.
    return cli.run(sweep, after_write_error=lambda: f"Fix that, then run: {again()}",
                   after_interrupt=lambda: f"{done()}:\n  {again()}")


def _again(args, command: str, started: bool) -> str:
    """The command that continues from here: with --resume once the sweep has a results folder."""
    return command + " --resume" if started and not args.resume else command
