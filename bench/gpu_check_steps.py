"""The measurements of bench/gpu_check.py that run in child processes: (a) throughput, (b) epoch, (c) packing, (d) OOD.

Each step is `step_x(params, emit)` and runs in its own spawned process, so the driver can stop it at its
budget, a CUDA crash fails one step only, and peak host RAM is the step's own. `emit.figure(...)` sends
each figure to the driver as soon as it is measured: a step stopped at its budget keeps what it measured.
"""
from __future__ import annotations

import os
import platform
import queue as queue_mod
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

# Part-2 style training (the part file's fixed crop + flip, SGD) for the epoch and packing steps.
# scheduler none: a chunk of steps can be repeated without running past a schedule's end.
PART2 = dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, scheduler="none",
             crop_padding=4, hflip=True)


class OutOfTime(Exception):
    """Raised inside a step when its soft deadline has passed."""


class Emitter:
    """Sends ('figure' | 'skip' | 'partial', record) to the driver; each figure says where and how it was measured."""

    def __init__(self, queue, step: str, params: dict):
        self.queue, self.step, self.params = queue, step, params
        self._where: dict | None = None

    def where(self) -> dict:
        if self._where is None:
            import torch

            if self.params["device"] == "cuda":
                name = torch.cuda.get_device_name(0)
            else:
                name = (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                        f"{torch.get_num_threads()} torch threads")
            self._where = {"device": name, "torch": torch.__version__, "command": self.params["command"]}
        return self._where

    def figure(self, name: str, value: float, unit: str, model: str = "", **detail) -> None:
        rec = {"step": self.step, "name": name, "value": float(value), "unit": unit, "model": model,
               "detail": detail, **self.where()}
        self.queue.put(("figure", rec))

    def skip(self, what: str, reason: str) -> None:
        self.queue.put(("skip", {"what": what, "reason": reason}))

    def partial(self, reason: str) -> None:
        self.queue.put(("partial", {"reason": reason}))

    def left(self) -> float:
        return self.params["deadline"] - time.time()


def child_main(step: str, params: dict, queue) -> None:
    """Entry point of a step's process: run it, then say 'done' or the error's first line."""
    if params["device"] == "cpu":
        # bench_train's functions resolve device 'auto': hiding the GPUs makes --device cpu mean the CPU everywhere.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # This process was spawned, so its own children would be too; the seed's DataLoader workers fork, as on any
    # Linux training script (they never touch CUDA, so forking after CUDA is initialised is safe).
    import multiprocessing

    multiprocessing.set_start_method("fork", force=True)
    try:
        STEPS[step](params, Emitter(queue, step, params))
        queue.put(("done", None))
    except OutOfTime as exc:  # a clean stop at the budget: what was measured stands
        queue.put(("partial", {"reason": f"stopped at the step budget: {exc}"}))
        queue.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - the driver records the step as failed with this line, goes on
        import traceback

        traceback.print_exc()
        lines = str(exc).strip().splitlines()
        queue.put(("error", f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")))


def images(params: dict, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """n training images: the real ones from --data, else uniform-random pixels (a speed test only)."""
    if params["data"]:
        from trainables.data import load_arrays

        a = load_arrays(params["data"])
        return a.x_train[:n], a.y_train[:n], f"real CIFAR-100 train images ({min(n, len(a.y_train))})"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return x, rng.integers(0, 100, n).astype(np.int64), f"synthetic random pixels ({n} images, no --data)"


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# (a) ---------------------------------------------------------------------------------------------------
def step_throughput(p: dict, emit: Emitter) -> None:
    """Images/s of this engine vs the seed's PIL + DataLoader pipeline, part-3 augmentation (bench_train's code)."""
    import bench_train as bt

    bs, batches, warmup = (8, 2, 1) if p["tiny"] else (512, 30, 3)
    x, y, data = images(p, (warmup + batches) * bs)
    cond = dict(batch_size=bs, timed_batches=batches, warmup_batches=warmup, data=data,
                augmentation="part-3 (crop, flip, AutoAugment, ColorJitter, mixup 0.4, label smoothing 0.1)",
                precision="bf16 autocast" if p["device"] == "cuda" else "fp32")
    t = time.time()
    emit.figure("engine augmentation + mixup alone (no model)", bt.bench_augment_only(x, y, bs, batches), "images/s",
                **cond)
    slowest = time.time() - t
    for model in ("simple_cnn", "resnet18_cifar"):
        rates = {}
        for label, fn in (("engine", bt.bench_engine), ("seed PIL + DataLoader (2 workers)", bt.bench_seed_way)):
            if emit.left() < slowest:
                emit.skip(f"{label} {model}", f"would overrun the step budget ({emit.left():.0f} s left, "
                                               f"the slowest measurement so far took {slowest:.0f} s)")
                continue
            t = time.time()
            rates[label] = fn(model, x, y, bs, batches, warmup)
            slowest = max(slowest, time.time() - t)
            emit.figure(f"{label} training", rates[label], "images/s", model, **cond)
        if len(rates) == 2:
            emit.figure("engine / seed pipeline", rates["engine"] / rates["seed PIL + DataLoader (2 workers)"], "x",
                        model, **cond)


# (b) ---------------------------------------------------------------------------------------------------
def step_epoch(p: dict, emit: Emitter) -> None:
    """One full epoch (50,000 images) of ResNet18-CIFAR in bf16 + channels_last, eager and torch.compile'd."""
    import torch

    from trainables.config import TrainConfig
    from trainables.engine import build_run, train_one_epoch

    # 400 divides 50,000: the engine drops a last partial batch, so every image of the epoch is trained.
    model, n, bs = ("simple_cnn", 64, 32) if p["tiny"] else ("resnet18_cifar", 50_000, 400)
    x, y, data = images(p, n)
    xt = torch.from_numpy(x).to(p["device"]).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y).to(p["device"])
    n = len(xt) - len(xt) % bs
    eager_s = None
    for compiled in (False, True):
        mode = "torch.compile" if compiled else "eager"
        cond = dict(batch_size=bs, images=n, precision="bf16 autocast", channels_last=True, data=data,
                    training="part-2 recipe: SGD nesterov, crop + flip")
        if compiled and eager_s is not None and emit.left() < 2 * eager_s:
            emit.skip(mode, f"would overrun the step budget ({emit.left():.0f} s left, "
                            f"an eager epoch took {eager_s:.0f} s)")
            continue
        cfg = TrainConfig.from_dict(model=model, batch_size=bs, epochs=1, precision="bf16", channels_last=True,
                                    compile=compiled, device=p["device"], **PART2)
        run = build_run(cfg, steps_per_epoch=n // bs)
        t = time.perf_counter()
        train_one_epoch(run, xt[:2 * bs], yt[:2 * bs], epoch=1)  # compile, cuDNN autotuning, allocator
        first = time.perf_counter() - t
        emit.figure(f"{mode}: first 2 steps" + (" (includes compiling)" if compiled else " (warm-up)"), first, "s",
                    model, **cond)
        t = time.perf_counter()
        train_one_epoch(run, xt[:n], yt[:n], epoch=1)
        seconds = time.perf_counter() - t
        eager_s = eager_s or seconds
        emit.figure(f"{mode}: one epoch of {n:,} images", seconds, "s", model, **cond)
        emit.figure(f"{mode}: training speed", n / seconds, "images/s", model, **cond)


# (c) ---------------------------------------------------------------------------------------------------
def step_packing(p: dict, emit: Emitter) -> None:
    """1, 2 and 4 trial processes training at once on one device: total images/s (Ray trials are processes)."""
    import multiprocessing as mp

    from trainables import atomic

    ctx = mp.get_context("spawn")
    bs, n, window, chunk = (16, 64, 1.0, 1) if p["tiny"] else (128, 10_000, 4.0, 10)
    models = ("simple_cnn",) if p["tiny"] else ("resnet18_cifar", "simple_cnn")
    x, y, data = images(p, n)
    folder = p["scratch"]
    for name, arr in (("pack_x.npy", x), ("pack_y.npy", y)):  # the workers read these; scratch, but never half-written
        with atomic.atomic_path(os.path.join(folder, name)) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    results = ctx.Queue()
    cmds = [ctx.Queue() for _ in range(4)]
    workers = [ctx.Process(target=pack_worker, args=(i, p, folder, cmds[i], results), daemon=True) for i in range(4)]
    for w in workers:
        w.start()
    try:
        _collect(results, len(workers), "up", emit)  # imports and data first: the rounds below time training only
        slowest = 0.0
        for model in models:
            for k in (1, 2, 4):
                if emit.left() < slowest:
                    emit.skip(f"{model} x{k}", f"would overrun the step budget ({emit.left():.0f} s left, "
                                                f"a round so far took {slowest:.0f} s)")
                    continue
                t = time.time()
                for c in cmds[:k]:
                    c.put(("warm", model, bs, chunk))
                _collect(results, k, "ready", emit)
                start_at = time.time() + 0.5
                for c in cmds[:k]:
                    c.put(("go", start_at, window))
                done = _collect(results, k, "result", emit)
                slowest = max(slowest, time.time() - t)
                rates = [imgs / secs for _, imgs, secs in done]
                cond = dict(batch_size=bs, window_s=window,
                            precision="bf16 autocast" if p["device"] == "cuda" else "fp32",
                            training="part-2 recipe: SGD, crop + flip", data=data,
                            per_trial_images_per_s=[round(r, 1) for r in rates])
                emit.figure(f"{k} trial process(es) at once: total", sum(rates), "images/s", model, **cond)
    finally:
        for c in cmds:
            c.put(("stop",))
        for w in workers:
            w.join(5)
            if w.is_alive():
                w.kill()


def _collect(results, k: int, kind: str, emit: Emitter) -> list:
    got = []
    while len(got) < k:
        try:
            msg = results.get(timeout=max(1.0, emit.left()))
        except queue_mod.Empty:
            raise OutOfTime(f"waiting for {k - len(got)} worker(s) to report '{kind}'") from None
        if msg[0] == "error":
            raise RuntimeError(f"worker {msg[1]}: {msg[2]}")
        got.append(msg[1:])
    return got


def pack_worker(wid: int, p: dict, folder: str, cmds, results) -> None:
    """One 'trial': trains chunks of steps on its own copy of the images until the shared window ends."""
    if p["device"] == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    parent = os.getppid()
    try:
        import torch

        from trainables.config import TrainConfig
        from trainables.engine import build_run, train_one_epoch

        if p["device"] == "cpu":
            torch.set_num_threads(1)  # as Ray does for a 1-CPU trial: processes must not oversubscribe the cores
        x = torch.from_numpy(np.load(os.path.join(folder, "pack_x.npy"))).to(p["device"])
        x = x.permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(np.load(os.path.join(folder, "pack_y.npy"))).to(p["device"])
        run, key = None, None
        results.put(("up", wid, 0, 0.0))
        while True:
            try:
                cmd = cmds.get(timeout=1.0)
            except queue_mod.Empty:
                if os.getppid() != parent:  # the step process was killed: do not hold the device
                    return
                continue
            if cmd[0] == "stop":
                return
            if cmd[0] == "warm":
                _, model, bs, chunk = cmd
                if key != (model, bs):
                    # A throughput measurement: a small lr, so that simple_cnn (no batch norm) never diverges on
                    # the repeated chunks (it did at lr 0.1: loss inf at step 1 under --tiny, once in a full run).
                    cfg = TrainConfig.from_dict(model=model, batch_size=bs, epochs=1, precision="auto",
                                                device=p["device"], seed=wid, **{**PART2, "lr": 0.01})
                    run, key = build_run(cfg, steps_per_epoch=chunk), (model, bs)
                n = chunk * bs
                train_one_epoch(run, x[:n], y[:n], epoch=1)
                results.put(("ready", wid, 0, 0.0))
            elif cmd[0] == "go":
                _, start_at, window = cmd
                time.sleep(max(0.0, start_at - time.time()))
                imgs, offset = 0, 0
                while time.time() < start_at + window:
                    part = slice(offset, offset + n)
                    train_one_epoch(run, x[part], y[part], epoch=1)  # ends with a device sync
                    imgs += n
                    offset = (offset + n) % (len(x) - n + 1)
                results.put(("result", wid, imgs, time.time() - start_at))
    except BaseException as exc:  # noqa: BLE001 - the step process reports it as the step's error line
        results.put(("error", wid, f"{type(exc).__name__}: {exc}"))


# (d) ---------------------------------------------------------------------------------------------------
def step_ood(p: dict, emit: Emitter) -> None:
    """The whole OOD set (19 memory-mapped files) through robustness.predict.predict_ood: seconds, peak host RAM."""
    import resource

    import torch

    from robustness.predict import predict_ood
    from trainables.models import build_model

    model_name, bs = ("simple_cnn", 64) if p["tiny"] else ("resnet18_cifar", 1024)
    cuda = p["device"] == "cuda"
    model = build_model(model_name).to(p["device"]).to(memory_format=torch.channels_last).eval()
    rss_before = _vm_kb("VmHWM:") / 1024
    done: dict[int, int] = {}
    deadline = p["deadline"]

    def progress(i: int, n_done: int, n_file: int) -> None:
        done[i] = n_done
        if time.time() > deadline:
            raise OutOfTime

    total = p["ood_images"]
    t = time.perf_counter()
    try:
        predict_ood(model, p["ood_dir"], batch_size=bs, device=p["device"], progress=progress, channels_last=True,
                    autocast_dtype=torch.bfloat16 if cuda else None)
    except OutOfTime:
        emit.partial(f"stopped at the step budget after {sum(done.values()):,} of {total:,} images")
    _sync(p["device"])
    seconds = time.perf_counter() - t
    n = sum(done.values())
    cond = dict(batch_size=bs, images=n, of_images=total, precision="bf16 autocast" if cuda else "fp32",
                channels_last=True, set=p["ood_what"], weights="random init (a speed test)")
    emit.figure(f"OOD prediction, {n:,} images", seconds, "s", model_name, **cond)
    emit.figure("OOD prediction speed", n / seconds, "images/s", model_name, **cond)
    emit.figure("peak host RAM of the predicting process (ru_maxrss)",
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB", model_name,
                before_predicting_mb=round(rss_before, 1), **cond)


def _vm_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


STEPS = {"a": step_throughput, "b": step_epoch, "c": step_packing, "d": step_ood}
