"""One sweep end to end, in phases that hand each other plain data:

  inputs.py   every input checked, with no Ray and no torch: the space, the results folder, the warm start, the
              data's sizes against every config the space can produce
  cluster.py  Ray started in the background while the data is read; resources; the OOD validation set; sweep.json
  search.py   the trials under Tune, with the console, wandb, the time limit and fail-fast listening
  finish.py   result files and best.json, the retrain, submission and robustness, the report

A scheduler's signal or Ctrl-C outside Tune stops the step at hand; every step keeps what it finished.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time

from .. import library_log
from ..api import SweepOutcome, SweepRequest
from ..console import say
from ..outcome import StopReason, StopRequested
from .cluster import start
from .finish import finish
from .inputs import measured_epoch_s, plan_only, prepare
from .search import search


def run(req: SweepRequest) -> SweepOutcome:
    t_start = time.time()
    state = {"folder": "", "started": req.resume}
    try:
        with scheduler_signals():
            if req.plan_only:
                folder, plan = plan_only(req)
                for line in plan.lines(measured_epoch_s(folder), req.job_s):
                    say(line)
                return SweepOutcome(folder, os.path.exists(os.path.join(folder, "sweep.json")), False,
                                    planned=plan.trials)
            inputs = prepare(req, state)
            with library_log.run_log(inputs.folder):  # from Ray's start on, libraries' warnings go to logs/
                ready = start(req, inputs, state)
                searched = search(req, inputs, ready, t_start)
                if isinstance(searched, SweepOutcome):
                    return searched
                return finish(req, inputs, ready, searched)
    except KeyboardInterrupt:
        return SweepOutcome(state["folder"], state["started"], False, StopReason.CTRL_C)
    except StopRequested as stop:
        say(f"stopped ({stop.reason}) outside the trials; what was done is saved")
        return SweepOutcome(state["folder"], state["started"], False, stop.reason)


@contextlib.contextmanager
def scheduler_signals():
    """SGE's -notify (SIGUSR1/SIGUSR2), SLURM's --signal and SIGTERM stop the step at hand, resumably. (While
    Tune runs, the adapter handles them the same way: trials keep their last epoch.)"""
    said = []

    def stop(signum, frame):
        # Once: SLURM sends TERM to every process of the job and the job script passes its own on, so the
        # orchestrator gets a second one while it saves; that must not cut the save short.
        if not said:
            said.append(signum)
            raise StopRequested(StopReason.SIGNAL)

    sigs = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    try:
        previous = {s: signal.signal(s, stop) for s in sigs}
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
