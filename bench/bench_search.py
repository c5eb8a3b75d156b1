"""Search efficiency on real CIFAR-100: which strategy finds the best model for the fewest epochs.

Every sweep is a real `orchestrator.py` run (its main(), in this process, so Ray starts once) (Ray Tune + Optuna
+ ASHA) on the proxy task
`search_spaces/proxy.yaml` (part 1's space on small_cnn, 3,000 train / 1,000 val images, 9 epochs),
changed only by overrides of the sampler, ASHA and trial count:

    random        RandomSampler, no early stopping (ASHA with grace = epochs: one rung at max_t)
    tpe           TPE (8 random start-up trials), no early stopping
    tpe_asha      TPE (8 random start-up trials) + ASHA (grace 1, reduction 3): the default until this measurement
    random_asha   RandomSampler + ASHA
    tpe_k4        TPE (4 random start-up trials), no early stopping
    tpe_asha_k4   TPE (4 random start-up trials) + ASHA: the default now (it reached (a)'s best sooner)

and, with --strategies, variants (seed recipe enqueued, other start-up counts, grace periods, reduction factors).

Each strategy × seed is one sweep; the curve is the best val_acc seen so far against epochs spent
(all trials' epochs in the order they finished), truncated at the common budget. Also measured: the
seed's hand-picked part-1 recipe on the same task (the reference line), and 2 trials × 1 thread against
1 trial × 2 threads (trials finished per hour).

    python bench/bench_search.py                    # everything; resumable: finished sweeps are skipped
    python bench/bench_search.py --stage report     # only the tables, plot and summary from what exists

Raw results: results/bench_search/ (git-ignored). Summary: bench/search_efficiency.json, plot:
bench/search_efficiency.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sweep.api import SweepRequest  # noqa: E402
from sweep.api import run_sweep as run_api  # noqa: E402
from trainables import atomic  # noqa: E402

PROXY = os.path.join(ROOT, "search_spaces", "proxy.yaml")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
OUT = os.path.join(ROOT, "results", "bench_search")
SUMMARY = os.path.join(ROOT, "bench", "search_efficiency.json")
PLOT = os.path.join(ROOT, "bench", "search_efficiency.png")

# The seed's part-1 recipe (CHALLENGE.md): SGD lr 0.1, momentum 0.9, wd 5e-4, batch 128, StepLR x0.1 every
# 10 of 50 epochs. On a 9-epoch proxy the literal step never fires; "scaled" keeps its shape (5 phases).
RECIPE = {"lr": 0.1, "batch_size": 128, "weight_decay": 5.0e-4, "label_smoothing": 0.0, "mixup_alpha": 0.0,
          "scheduler": "step", "gamma": 0.1}
REFERENCES = {"recipe_literal": {**RECIPE, "step_size": 10}, "recipe_scaled": {**RECIPE, "step_size": 2}}
# What part1.yaml enqueues (step 10 of its 30 epochs), scaled to the proxy's 9 epochs: decays after 3 and 6.
ENQUEUED = {**RECIPE, "step_size": 3}


def strategies(epochs: int, budget: int, asha_trials: int) -> dict[str, dict]:
    """name -> overrides of proxy.yaml. No early stopping = one ASHA rung at max_t (stops nothing)."""
    full = budget // epochs
    no_es = {"asha.grace_period": epochs, "trials.num_samples": full}
    es = {"asha.grace_period": 1, "asha.reduction_factor": 3, "trials.num_samples": asha_trials}
    k8, k4 = {"sampler.n_startup_trials": 8}, {"sampler.n_startup_trials": 4}
    return {
        "random": {"sampler.type": "random", **no_es},
        "tpe": {"sampler.type": "tpe", **k8, **no_es},
        "tpe_asha": {"sampler.type": "tpe", **k8, **es},
        "random_asha": {"sampler.type": "random", **es},
        # 4 random start-up trials instead of 8: the default since this measurement (proxy.yaml, part*.yaml)
        "tpe_k4": {"sampler.type": "tpe", **k4, **no_es},
        "tpe_asha_k4": {"sampler.type": "tpe", **k4, **es},
        # variants of the default, run with --strategies
        "tpe_asha_enq": {"sampler.type": "tpe", **k8, **es, "enqueue": [ENQUEUED]},
        "tpe_asha_k4_enq": {"sampler.type": "tpe", **k4, **es, "enqueue": [ENQUEUED]},
        "tpe_asha_k16": {"sampler.type": "tpe", "sampler.n_startup_trials": 16, **es},
        "tpe_asha_g3": {"sampler.type": "tpe", **k4, **es, "asha.grace_period": 3},
        "tpe_asha_rf2": {"sampler.type": "tpe", **k4, **es, "asha.reduction_factor": 2},
    }


CORE = ("random", "tpe", "tpe_asha", "random_asha")
DEFAULT = "tpe_asha_k4"  # what proxy.yaml (and part*.yaml) now do: TPE with 4 random start-up trials + ASHA
LABELS = {"random": "(a) random, no early stopping", "tpe": "(b) TPE (8 random start-up), no early stopping",
          "tpe_asha": "(c) TPE (8 random start-up) + ASHA: the default before this measurement",
          "random_asha": "(d) random + ASHA",
          "tpe_asha_enq": "(e) TPE (8 random start-up) + ASHA, seed recipe enqueued",
          "tpe_asha_k4": "(f) TPE (4 random start-up) + ASHA: the default now",
          "tpe_k4": "(g) TPE (4 random start-up), no early stopping",
          "tpe_asha_k4_enq": "(h) TPE (4 random start-up) + ASHA, seed recipe enqueued"}


def say(msg: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}: {msg}", flush=True)


# ---------------------------------------------------------------- running sweeps

def finished_run(folder: str) -> dict | None:
    """A sweep folder's bench.json when that run finished (exit 0); else None, the partial folder removed so the
    run starts again."""
    marker = os.path.join(folder, "bench.json")
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
        if done["rc"] == 0:
            return done
    if os.path.exists(folder):
        shutil.rmtree(folder)
    return None


def write_space(spec, path: str) -> str:
    """The validated space as a YAML file orchestrator.py reads (the benchmark's generated variants)."""
    import yaml

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic.open_writer(path) as f:
        yaml.safe_dump(spec.yaml_form(), f, sort_keys=False)
    return path


def run_sweep(name: str, overrides: dict, args) -> dict:
    """One orchestrator.py run on a generated YAML; skipped when its bench.json says it finished."""
    from sweep.space import load_space

    folder = os.path.join(args.out, "sweeps", name)
    marker = os.path.join(folder, "bench.json")
    done = finished_run(folder)
    if done:
        return done
    spec = load_space(args.space, {**overrides, "name": name, "data.path": os.path.abspath(args.data)})
    space = write_space(spec, os.path.join(args.out, "spaces", f"{name}.yaml"))
    argv = ["--space", space, "--no-retrain", "--wandb", "off", "--results-dir", os.path.join(args.out, "sweeps"),
            "--cpus", str(args.cpus)]
    request = SweepRequest(space=space, retrain=False, wandb="off", results_dir=os.path.join(args.out, "sweeps"),
                           cpus=args.cpus, command="python orchestrator.py " + " ".join(argv))
    say(f"sweep {name}: {' '.join(f'{k}={v}' for k, v in overrides.items())}")
    load0, t0 = os.getloadavg(), time.time()
    os.makedirs(os.path.join(args.out, "sweeps"), exist_ok=True)
    rc = _orchestrate(request, os.path.join(args.out, "sweeps", f"{name}.log"))
    done = {"name": name, "rc": rc, "overrides": overrides, "wall_s": round(time.time() - t0, 1),
            "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "command": "python orchestrator.py " + " ".join(argv)}
    if rc == 0 and not os.path.exists(os.path.join(folder, "history.csv")):
        done["rc"], done["error"] = -1, "exit 0 but no history.csv"
    atomic.write_json(marker, done)
    if rc == 130:  # orchestrator's exit on Ctrl-C: stop the bench too; this sweep reruns next time
        raise KeyboardInterrupt
    say(f"sweep {name}: exit {done['rc']} after {done['wall_s']:.0f}s" +
        ("" if done["rc"] == 0 else f" -- FAILED, see {args.out}/sweeps/{name}.log"))
    return done


def _orchestrate(request, log_path: str) -> int:
    """The sweep through sweep.api in this process, its output in log_path; 0 when it finished, 130 when it was
    interrupted. In-process, Ray starts once for all sweeps: a fresh `ray.init` per sweep cost 20-40 s here
    (2 shared cores), a third of a small sweep."""

    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            outcome = run_api(request)
            return 0 if outcome.finished else 130
        except Exception as exc:  # noqa: BLE001 -- recorded as a failed sweep, the others go on
            print(f"bench: {type(exc).__name__}: {exc}", flush=True)
            return -2
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def run_reference(args) -> dict:
    """The seed's recipe on the proxy task, 3 seeds, two processes at once (one thread each), like a sweep."""
    path = os.path.join(args.out, "reference.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(ref, seed) for ref in REFERENCES for seed in args.seeds]
    say(f"reference: {len(jobs)} runs of the seed's recipe")
    with ProcessPoolExecutor(2) as pool:
        outs = list(pool.map(_reference_run,
                             [(args.space, ref, seed, os.path.abspath(args.data)) for ref, seed in jobs]))
    res = {ref: {str(seed): h for (r, seed), h in zip(jobs, outs) if r == ref} for ref in REFERENCES}
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    return res


def _reference_run(job) -> list[dict]:
    from sweep.space import load_space
    from trainables.engine import train

    space, ref, seed, data = job
    spec = load_space(space, {"data.path": data})
    cfg = spec.trial_config(REFERENCES[ref]).replace(seed=seed)
    return [{k: m[k] for k in ("epoch", "val_acc", "epoch_time_s")} for m in train(cfg).history]


def run_confirm(args) -> dict:
    """Retrain each sweep's winner (within the budget) and the seed's recipes with 3 model seeds; report the
    validation and the clean test accuracy. A winner picked as the max of many noisy 1,000-image validation
    scores is optimistic; fresh seeds and the 10,000 test images are not. The test split is read only here."""
    from concurrent.futures import ProcessPoolExecutor

    path = os.path.join(args.out, "confirm.json")
    res = json.load(open(path)) if os.path.exists(path) else {}
    jobs = {f"{r}/seed{k}": (REFERENCES.get(r) or ENQUEUED, k)
            for r in ("recipe_literal", "recipe_part1") for k in args.seeds}
    for strat in args.confirm:
        for seed in args.seeds:
            folder = os.path.join(args.out, "sweeps", f"{strat}_s{seed}")
            cfg = winner_config(folder, args.budget, args.epochs)
            for k in args.seeds if cfg else ():
                jobs[f"{strat}_s{seed}/seed{k}"] = (cfg, k)
    todo = [(name, job) for name, job in jobs.items() if name not in res]
    say(f"confirm: {len(todo)} runs ({len(jobs) - len(todo)} done before)")
    with ProcessPoolExecutor(2) as pool:
        futures = {name: pool.submit(_confirm_run, (args.space, cfg, k, os.path.abspath(args.data)))
                   for name, (cfg, k) in todo}
        for name, fut in futures.items():
            res[name] = {**fut.result(), "config": jobs[name][0]}
            with open(path, "w") as f:
                json.dump(res, f, indent=1)
    return res


def winner_config(folder: str, budget: int, epochs: int) -> dict | None:
    """Searched values of the trial winner_within() picks (from trials.csv)."""
    done = [(acc, tid) for _, tid, ep, acc in epochs_in_order(folder)[:budget] if ep == epochs and acc == acc]
    if not done:
        return None
    tid = max(done)[1]
    with open(os.path.join(folder, "sweep.json")) as f:
        names = json.load(f)["param_names"]
    with open(os.path.join(folder, "trials.csv"), newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["trial_id"] == tid)
    return {n: row[n] for n in names if row[n] != ""}


def _confirm_run(job) -> dict:
    from sweep.space import load_space
    from trainables.data import load_arrays
    from trainables.engine import evaluate, train

    space, cfg, seed, data = job
    spec = load_space(space, {"data.path": data})
    config = spec.trial_config(cfg).replace(seed=seed)
    arrays = load_arrays(data)
    out = train(config, data=arrays)
    test = evaluate(out.model, arrays.x_test, arrays.y_test, config.eval_batch_size)
    return {"val_acc": out.metrics["val_acc"], "test_acc": test["acc"]}


def confirm_table(res: dict, args) -> dict:
    import numpy as np

    groups: dict[str, list] = {}
    for name, r in res.items():
        run, _ = name.split("/")
        strat = run.rsplit("_s", 1)[0] if not run.startswith("recipe") else run
        groups.setdefault(strat, []).append((run, r))
    out = {}
    for strat, rows in groups.items():
        per_run: dict[str, list] = {}
        for run, r in rows:
            per_run.setdefault(run, []).append(r)
        out[strat] = {
            "runs": {run: {"val_acc_mean": round(float(np.mean([r["val_acc"] for r in rs])), 4),
                           "test_acc_mean": round(float(np.mean([r["test_acc"] for r in rs])), 4), "n": len(rs)}
                     for run, rs in per_run.items()},
            "test_acc_mean": round(float(np.mean([r["test_acc"] for _, r in rows])), 4),
            "test_acc_std": round(float(np.std([r["test_acc"] for _, r in rows])), 4),
            "val_acc_mean": round(float(np.mean([r["val_acc"] for _, r in rows])), 4),
            "n": len(rows),
        }
    return out


def run_concurrency(args) -> dict:
    """Same trials (random sampler, seed 0, no early stopping) as 2 at once x 1 thread and 1 x 2 threads."""
    e = args.epochs
    base = {"sampler.type": "random", "sampler.seed": 0, "asha.grace_period": e,
            "trials.num_samples": args.conc_trials}
    setups = {"conc_2x1": {**base, "trials.max_concurrent": 2, "resources.cpu": 1, "fixed.threads": 1},
              "conc_1x2": {**base, "trials.max_concurrent": 1, "resources.cpu": 2, "fixed.threads": 2}}
    return {f"{name}_r{r}": run_sweep(f"{name}_r{r}", ov, args)
            for r in range(args.conc_reps) for name, ov in setups.items()}


# ---------------------------------------------------------------- analysis

def _ended(row: dict) -> float:
    """When the epoch ended (unix s): `ended_at`; folders written before it have Ray's `timestamp`."""
    return float(row.get("ended_at") or row.get("timestamp") or "nan")


def _epoch(row: dict) -> int:
    return int(float(row.get("epoch") or row["training_iteration"]))


def epochs_in_order(folder: str) -> list[tuple[float, str, int, float]]:
    """(finish time, trial, epoch, val_acc) for every epoch the sweep trained, in the order they finished."""
    rows = []
    with open(os.path.join(folder, "history.csv"), newline="") as f:
        for r in csv.DictReader(f):
            acc = float(r["val_acc"]) if r.get("val_acc") not in (None, "") else float("nan")
            rows.append((_ended(r), r["trial_id"], _epoch(r), acc))
    # A row filled in from a checkpoint in sweeps before the adapter kept every epoch's additions has no time: it
    # ended before the trial's next epoch with one.
    for i, (t, trial, epoch, acc) in enumerate(rows):
        if t != t:
            later = [u for u, tr, e, _ in rows if tr == trial and e > epoch and u == u]
            rows[i] = (min(later) - 1e-3 * (1 + max(e for _, tr, e, _ in rows if tr == trial) - epoch)
                       if later else float("inf"), trial, epoch, acc)
    # (Ray's timestamp, in folders from before `ended_at`, is whole seconds: within one, earlier epochs first.)
    return sorted(rows, key=lambda r: (r[0], r[2]))


def best_curve(folder: str, budget: int) -> tuple[list[float], int]:
    """Best val_acc so far after 1..budget epochs (flat after the sweep ended early), and the epochs it spent."""
    curve, best = [], 0.0
    rows = epochs_in_order(folder)
    for _, _, _, acc in rows[:budget]:
        best = max(best, acc) if acc == acc else best
        curve.append(best)
    return curve + [best] * (budget - len(curve)), len(rows)


def winner_within(folder: str, budget: int, epochs: int) -> float | None:
    """The sweep's winner as pipeline picks it (a trial trained all its epochs, by its last val_acc),
    counting only trials that finished inside the budget."""
    done = [acc for _, _, ep, acc in epochs_in_order(folder)[:budget] if ep == epochs and acc == acc]
    return max(done) if done else None


def rung_predictiveness(folders: list[str], epochs: int) -> dict:
    """Spearman correlation of val_acc after e epochs with val_acc after all epochs, over fully trained trials
    of sweeps without early stopping: how well an ASHA rung at e ranks trials (evidence for grace_period)."""
    import numpy as np

    curves = []
    for folder in folders:
        with open(os.path.join(folder, "history.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        for tid in {r["trial_id"] for r in rows}:
            accs = [float(r["val_acc"]) for r in sorted((r for r in rows if r["trial_id"] == tid),
                                                        key=_epoch)]
            if len(accs) == epochs:
                curves.append(accs)
    if len(curves) < 3:
        return {}
    arr = np.array(curves)
    rank = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)  # noqa: E731
    final = rank(arr[:, -1])
    out = {"trials": len(curves)}
    for e in range(1, epochs):
        out[str(e)] = round(float(np.corrcoef(rank(arr[:, e - 1]), final)[0, 1]), 3)
        # does the top third at epoch e contain the trial that is best at the end?
        top = np.argsort(-arr[:, e - 1])[: max(1, len(arr) // 3)]
        out[f"{e}_top_third_keeps_best"] = bool(int(np.argmax(arr[:, -1])) in top)
    return out


def first_reach(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= target - 1e-12), None)


def concurrency_table(conc: dict, args) -> list[dict]:
    out = []
    for name, done in sorted(conc.items()):
        folder = os.path.join(args.out, "sweeps", name)
        rows = epochs_in_order(folder)
        with open(os.path.join(folder, "history.csv"), newline="") as f:
            hist = list(csv.DictReader(f))
        start = min(_ended(r) - float(r["epoch_time_s"]) for r in hist)
        span = max(r[0] for r in rows) - start
        trials = len({r[1] for r in rows})
        out.append({"run": name, "trials": trials, "epochs": len(rows), "span_s": round(span, 1),
                    "trials_per_hour": round(trials / span * 3600, 1),
                    "epochs_per_hour": round(len(rows) / span * 3600),
                    "sweep_wall_s": done["wall_s"], "loadavg_before": done["loadavg_before"][0],
                    "loadavg_after": done["loadavg_after"][0]})
    return out


def report(args, ran: dict, ref: dict | None, conc: dict | None) -> dict:
    import numpy as np

    budget = args.budget
    curves, spent, winners = {}, {}, {}
    for name, done in ran.items():
        if done["rc"] != 0:
            continue
        strat, seed = name.rsplit("_s", 1)
        c, n = best_curve(os.path.join(args.out, "sweeps", name), budget)
        curves.setdefault(strat, {})[int(seed)] = c
        spent.setdefault(strat, {})[int(seed)] = n
        winners.setdefault(strat, {})[int(seed)] = winner_within(os.path.join(args.out, "sweeps", name), budget,
                                                                 args.epochs)
    summary = {"task": args.task, "budget_epochs": budget, "epochs_per_trial": args.epochs, "seeds": args.seeds,
               "command": "python bench/bench_search.py " + " ".join(sys.argv[1:]), "strategies": {}}
    means = {s: np.mean([c[k] for k in sorted(c)], axis=0) for s, c in curves.items()}
    target = float(means["random"][-1]) if "random" in means else None
    a_epochs = first_reach(list(means["random"]), target) if target is not None else None
    for s in curves:
        finals = [curves[s][k][-1] for k in sorted(curves[s])]
        reach = first_reach(list(means[s]), target) if target is not None else None
        per_seed = {k: first_reach(curves[s][k], target) for k in sorted(curves[s])} if target is not None else {}
        summary["strategies"][s] = {
            "seeds_done": sorted(curves[s]), "best_at_budget": finals, "best_at_budget_mean": float(np.mean(finals)),
            "epochs_spent": [spent[s][k] for k in sorted(spent[s])],
            "winner_within_budget": [winners[s][k] for k in sorted(winners[s])],
            "epochs_to_reach_random_best_mean_curve": reach,
            "epochs_to_reach_random_best_per_seed": per_seed,
            "curve_mean": [round(float(v), 4) for v in means[s]],
        }
    summary["random_best_mean"] = target
    summary["random_epochs_to_own_best"] = a_epochs
    c_reach = summary["strategies"].get("tpe_asha", {}).get("epochs_to_reach_random_best_mean_curve")
    if a_epochs and c_reach:
        summary["ratio_a_over_c"] = round(a_epochs / c_reach, 2)
        summary["ratio_budget_over_c"] = round(budget / c_reach, 2)
        summary["target_met"] = c_reach * 3 <= a_epochs
    d_reach = summary["strategies"].get(DEFAULT, {}).get("epochs_to_reach_random_best_mean_curve")
    if a_epochs and d_reach:
        summary["default"] = DEFAULT
        summary["ratio_a_over_default"] = round(a_epochs / d_reach, 2)
        summary["target_met_by_default"] = d_reach * 3 <= a_epochs
    if ref:
        summary["reference"] = {r: {"final_per_seed": [h[-1]["val_acc"] for _, h in sorted(v.items())],
                                    "best_per_seed": [max(m["val_acc"] for m in h) for _, h in sorted(v.items())]}
                                for r, v in ref.items()}
        for r in summary["reference"].values():
            r["final_mean"] = float(np.mean(r["final_per_seed"]))
    if conc:
        summary["concurrency"] = concurrency_table(conc, args)
    confirm = os.path.join(args.out, "confirm.json")
    if os.path.exists(confirm):
        summary["confirm"] = confirm_table(json.load(open(confirm)), args)
    no_es = [os.path.join(args.out, "sweeps", n) for n, d in ran.items() if d["rc"] == 0 and n.startswith("random_s")]
    summary["rung_predictiveness"] = rung_predictiveness(no_es, args.epochs)
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=1)
    plot(summary, curves, args.plot)
    print_tables(summary)
    return summary


def plot(summary: dict, curves: dict, path: str) -> None:
    """Left: the four strategies of the issue; right: variants of the default. Bands (min-max over seeds)
    only for (a) and (c), to stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [[s for s in CORE if s in curves], [s for s in curves if s not in CORE]]
    panels = [p for p in panels if p]
    if len(panels) > 1:
        panels[1] = [s for s in ("random", "tpe_asha") if s in curves] + panels[1]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), dpi=100, sharey=True, squeeze=False)
    x = np.arange(1, summary["budget_epochs"] + 1)
    colours = {s: f"C{i}" for i, s in enumerate(curves)}
    for ax, names in zip(axes[0], panels):
        for s in names:
            arr = np.array([curves[s][k] for k in sorted(curves[s])])
            ax.plot(x, arr.mean(0), color=colours[s], lw=1.8, ls="--" if s == "tpe" else "-",
                    label=f"{LABELS.get(s, s)} (n={len(arr)})")
            if s in ("random", "tpe_asha", DEFAULT):
                ax.fill_between(x, arr.min(0), arr.max(0), color=colours[s], alpha=0.12)
        for r, v in summary.get("reference", {}).items():
            ax.axhline(v["final_mean"], ls=":", lw=1.2, color="grey" if r.endswith("literal") else "black",
                       label=f"seed recipe, {r.split('_')[1]} step, {summary['epochs_per_trial']} epochs "
                             f"(mean of {len(v['final_per_seed'])} seeds)")
        ax.set_xlabel("epochs spent by the sweep (all trials, in the order they finished)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("best validation accuracy so far")
    fig.suptitle(f"{summary['task']}: mean over {len(summary['seeds'])} sampler seeds, band = min-max",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_tables(s: dict) -> None:
    print(f"\nbudget {s['budget_epochs']} epochs per sweep; (a)'s mean best {s.get('random_best_mean')}, "
          f"reached by (a)'s mean curve after {s.get('random_epochs_to_own_best')} epochs")
    print("| strategy | seeds | best val_acc at budget (per seed) | mean | winner's val_acc (full trial) | "
          "epochs spent (whole sweep) | epochs to reach (a)'s best (mean curve) | per seed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, v in s["strategies"].items():
        print(f"| {LABELS.get(name, name)} | {len(v['seeds_done'])} | "
              f"{', '.join(f'{x:.3f}' for x in v['best_at_budget'])} | {v['best_at_budget_mean']:.3f} | "
              f"{', '.join('-' if x is None else f'{x:.3f}' for x in v['winner_within_budget'])} | "
              f"{', '.join(map(str, v['epochs_spent']))} | {v['epochs_to_reach_random_best_mean_curve']} | "
              f"{', '.join(str(x) for x in v['epochs_to_reach_random_best_per_seed'].values())} |")
    if "ratio_a_over_c" in s:
        print(f"\nratio (a)/(c): {s['ratio_a_over_c']} (budget/(c): {s['ratio_budget_over_c']}); "
              f"target (<= 1/3 of (a)'s epochs) met: {s['target_met']}")
    if "ratio_a_over_default" in s:
        print(f"ratio (a)/{LABELS[s['default']]}: {s['ratio_a_over_default']}; "
              f"target met: {s['target_met_by_default']}")
    for r, v in s.get("reference", {}).items():
        print(f"reference {r}: final val_acc per seed {v['final_per_seed']}, mean {v['final_mean']:.3f}")
    if s.get("rung_predictiveness"):
        print(f"rung predictiveness (Spearman of val_acc at epoch e vs last, random-search trials): "
              f"{s['rung_predictiveness']}")
    for name, v in s.get("confirm", {}).items():
        print(f"retrained with {len(s['seeds'])} model seeds: {LABELS.get(name, name)}: "
              f"test_acc {v['test_acc_mean']:.4f} "
              f"+- {v['test_acc_std']:.4f}, val_acc {v['val_acc_mean']:.4f} (n={v['n']}); per sweep "
              f"{ {k: x['test_acc_mean'] for k, x in v['runs'].items()} }")
    for row in s.get("concurrency", []):
        print(f"concurrency {row}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--space", default=PROXY, help="the proxy task (a search space YAML)")
    p.add_argument("--out", default=OUT)
    p.add_argument("--summary", default=SUMMARY)
    p.add_argument("--plot", default=PLOT)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=[*CORE, "tpe_k4", DEFAULT])
    p.add_argument("--budget", type=int, default=72, help="epochs per sweep (all trials together)")
    p.add_argument("--asha-trials", type=int, default=30, help="trials of the ASHA sweeps (cut at --budget)")
    p.add_argument("--conc-trials", type=int, default=4)
    p.add_argument("--conc-reps", type=int, default=1)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--confirm", nargs="+", default=["random", "tpe_asha", DEFAULT],
                   help="strategies whose winners --stage confirm retrains with fresh seeds")
    p.add_argument("--stage", choices=("all", "sweeps", "reference", "concurrency", "confirm", "report"),
                   default="all")
    args = p.parse_args()
    from sweep.space import load_space

    spec = load_space(args.space)
    args.epochs = spec.epochs
    n_val = round(spec.fixed.get("subset", 0) * spec.fixed.get("val_fraction", 0.1))
    args.task = (f"{spec.fixed.get('model')}, {spec.fixed.get('subset', 0) - n_val:,} train / {n_val:,} val images, "
                 f"{args.epochs} epochs per trial")
    table = strategies(args.epochs, args.budget, args.asha_trials)
    unknown = [s for s in args.strategies if s not in table]
    if unknown:
        p.error(f"unknown strategies {unknown}; choose from {list(table)}")
    os.makedirs(args.out, exist_ok=True)
    run = args.stage != "report"
    ref = run_reference(args) if args.stage in ("all", "reference") or os.path.exists(
        os.path.join(args.out, "reference.json")) else None
    conc = run_concurrency(args) if args.stage in ("all", "concurrency") else None
    ran = {}
    for seed in args.seeds:  # seed by seed: a partial run still compares every strategy
        for s in args.strategies:
            name = f"{s}_s{seed}"
            if run and args.stage in ("all", "sweeps"):
                ran[name] = run_sweep(name, {**table[s], "sampler.seed": seed}, args)
            elif os.path.exists(os.path.join(args.out, "sweeps", name, "bench.json")):
                with open(os.path.join(args.out, "sweeps", name, "bench.json")) as f:
                    ran[name] = json.load(f)
    if conc is None and any(os.path.exists(os.path.join(args.out, "sweeps", f"conc_2x1_r{r}", "bench.json"))
                            for r in range(args.conc_reps)):
        conc = {}
        for r in range(args.conc_reps):
            for n in (f"conc_2x1_r{r}", f"conc_1x2_r{r}"):
                m = os.path.join(args.out, "sweeps", n, "bench.json")
                if os.path.exists(m):
                    conc[n] = json.load(open(m))
    if args.stage in ("all", "confirm"):
        run_confirm(args)
    failed = [n for n, d in {**ran, **(conc or {})}.items() if d["rc"] != 0]
    report(args, ran, ref, conc)
    if failed:
        say(f"FAILED sweeps (excluded above): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
