"""Fail fast on a mistake every trial will make.

When the first trials to end (at least 2, and the whole first batch that ran at once) all errored with the same
user error — a config, data or weights mistake (trainables' UserError), not a divergence, a lost worker or an
out-of-memory crash — every later trial would end the same way: the sweep is stopped there, resumably, instead of
running each trial into it. One success, or two different errors, among those first trials and the sweep runs on.
"""
from __future__ import annotations

from .outcome import Failure, Listener, Status, StopReason


class FailFast(Listener):
    def __init__(self, first: int, stop):
        self.first = max(2, first)  # how many ended trials decide
        self.stop = stop  # called once with StopReason.USER_ERROR
        self.ended: list[Failure | None] = []
        self.decided = False
        self.failure: Failure | None = None  # the mistake the sweep was stopped for

    @classmethod
    def for_spec(cls, spec, stop) -> "FailFast":
        return cls(min(spec.trials.max_concurrent, spec.trials.num_samples), stop)

    def on_end(self, trial_id, status, metrics, error):
        if self.decided:
            return
        self.ended.append(error if status is Status.ERRORED and isinstance(error, Failure) else None)
        if len(self.ended) < self.first:
            return
        self.decided = True
        first = self.ended[0]
        same = all(f is not None and f.user and (f.kind, f.message) == (first.kind, first.message)
                   for f in self.ended)
        if same:
            self.failure = first
            self.stop(StopReason.USER_ERROR)

    def line(self, resume_command: str) -> str:
        """The one line the sweep ends with."""
        return (f"the first {len(self.ended)} trials all failed with the same mistake, which every trial would "
                f"make: {self.failure}. The sweep is stopped (finished work kept); fix that, then continue with: "
                f"{resume_command}")
