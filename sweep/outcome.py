"""What a sweep's trials came to, as plain data: what the adapter returns and everything after it reads.

No Ray names travel past the adapter: statuses are ours, metric names are the engine's (plus the two the
trial wrapper adds, `peak_rss_mb` and `ended_at`).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    COMPLETED = "completed"  # trained every epoch of its budget
    STOPPED_EARLY = "stopped_early"  # ASHA stopped it at a rung
    ERRORED = "errored"  # raised (after its retries), or diverged
    INTERRUPTED = "interrupted"  # Ctrl-C, a time limit or a scheduler's signal stopped it: --resume continues it

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    status: Status
    config: dict  # the sampled hyperparameters, as the trial received them
    metrics: dict  # its last epoch's metrics (engine names)
    history: list[dict]  # one dict per epoch run (engine names)
    checkpoint: str | None  # its last saved training state (a path or URI), if any
    wall_s: float  # seconds the trial spent running, over all its attempts
    error: str = ""  # one line, for errored trials
    failure: "Failure | None" = None  # the same, classified (errored trials)
    trained: int = 0  # epochs it trained, counting each again that it trained again (PBT goes back to a donor's epoch)

    @property
    def epochs(self) -> int:
        return len(self.history) or int(self.metrics.get("epoch", 0) or 0)


@dataclass(frozen=True)
class Failure:
    """Why a trial errored, as plain data (the adapter classifies Ray's wrapped exception): its one line, the
    exception's class, and whether it is the user's mistake (a trainables UserError: config, data or weights),
    which every trial of the sweep would make again, unlike a divergence, a lost worker or running out of memory."""

    message: str
    kind: str = ""
    user: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass
class SweepRun:
    trials: list[TrialOutcome]
    experiment_path: str = ""
    stop_reason: "StopReason | None" = None  # why Tune was stopped before the end

    @property
    def interrupted(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status is Status.INTERRUPTED]

    @property
    def ended(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status is not Status.INTERRUPTED]


class StopReason(str, enum.Enum):
    CTRL_C = "ctrl-c"
    TIME_LIMIT = "time-limit"
    SIGNAL = "signal"  # a batch scheduler's warning before it kills the job (SIGTERM, SIGUSR1, SIGUSR2)
    USER_ERROR = "user-error"  # the first trials all made the same config/data/weights mistake (sweep/fail_fast.py)

    def __str__(self) -> str:
        return self.value


class StopRequested(Exception):
    """Outside Tune (data, retrain, submission): a scheduler's signal or the time limit stops the step at hand;
    what it finished is saved, and --resume continues."""

    def __init__(self, reason: StopReason):
        super().__init__(str(reason))
        self.reason = reason


@dataclass
class Listener:
    """Per-trial events, called in the driver as they happen: by the adapter, for console, tracking and the
    time limit. Every method returns at once (the driver's loop runs Tune)."""

    def on_start(self, trial_id: str, config: dict) -> None: ...

    def on_result(self, trial_id: str, metrics: dict) -> None: ...

    def on_end(self, trial_id: str, status: Status, metrics: dict, error: "Failure | str") -> None:
        """`error`: a Failure for an errored trial (str() is its one line), else ""."""

    def on_tick(self) -> None: ...

    def on_progress(self, trial_id: str, progress: dict) -> None:
        """Inside a long epoch: {epoch, step, steps, t} as the trial last wrote it."""

    def close(self, interrupted: bool) -> None: ...


@dataclass
class Listeners(Listener):
    """Fans every event out; one listener's failure never stops the sweep (it is said once)."""

    members: list[Listener] = field(default_factory=list)

    def _each(self, name: str, *args) -> None:
        for m in list(self.members):
            try:
                getattr(m, name)(*args)
            except Exception as exc:  # noqa: BLE001 - a broken tracker must not end a day-long sweep
                print(f"[sweep] {type(m).__name__} failed ({type(exc).__name__}: {exc}); it is off from here",
                      flush=True)
                self.members.remove(m)

    def on_start(self, trial_id, config):
        self._each("on_start", trial_id, config)

    def on_result(self, trial_id, metrics):
        self._each("on_result", trial_id, metrics)

    def on_end(self, trial_id, status, metrics, error):
        self._each("on_end", trial_id, status, metrics, error)

    def on_tick(self):
        self._each("on_tick")

    def on_progress(self, trial_id, progress):
        self._each("on_progress", trial_id, progress)

    def close(self, interrupted):
        self._each("close", interrupted)
