"""optuna.journal: every trial of the sweep as Optuna holds it, rebuilt the same on every call, and served by a
real optuna-dashboard (127.0.0.1, a free port, stopped by its pid)."""
from __future__ import annotations

import json
import os

import pytest
from helpers.journal import attr, dashboard, get, load
from report_util import ALL, make, read_csv

from sweep.report import record_trials

STATES = {"completed": "COMPLETE", "stopped_early": "PRUNED", "errored": "FAIL"}


@pytest.fixture(scope="module", params=ALL)
def journal(request, tmp_path_factory):
    folder = make(request.param, tmp_path_factory.mktemp(request.param))
    return {"folder": folder, "path": record_trials(folder), "trials": read_csv(os.path.join(folder, "trials.csv")),
            "history": read_csv(os.path.join(folder, "history.csv")),
            "spec": json.load(open(os.path.join(folder, "sweep.json")))["spec"]}


def test_every_trial_is_in_the_journal_as_it_happened(journal):
    study = load(journal["path"])
    metric = journal["spec"]["metric"]
    assert study.study_name == journal["spec"]["name"]
    objectives = _objectives(journal["spec"])
    assert [d.name for d in study.directions] == [{"max": "MAXIMIZE", "min": "MINIMIZE"}[m] for _, m in objectives]
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert sorted(by_id) == sorted(t["trial_id"] for t in journal["trials"])
    for row in journal["trials"]:
        t = by_id[row["trial_id"]]
        assert t.state.name == STATES[row["status"]]
        for name in journal["spec"]["params"]:
            if row[name] == "":
                assert name not in t.params  # a conditional parameter the trial did not use
            else:
                assert str(t.params[name]) == row[name]
        epochs = {int(h["epoch"]): float(h[metric]) for h in journal["history"] if h["trial_id"] == row["trial_id"]}
        assert t.intermediate_values == epochs  # the learning curve, epoch by epoch
        if row["status"] == "completed":
            rank = "best" if journal["spec"].get("select") == "best_epoch" else "final"
            assert t.values[0] == float(row[f"{rank}_{metric}"])
            last = [h for h in journal["history"] if h["trial_id"] == row["trial_id"]][-1]
            for (name, _), value in list(zip(objectives, t.values))[1:]:
                assert value == float(last[name])  # the other objectives at the same (last) epoch


def _objectives(spec: dict) -> list[tuple[str, str]]:
    named = [(o["metric"], o["mode"]) for o in spec.get("objectives") or []]
    return named if len(named) >= 2 else [(spec["metric"], spec["mode"])]


def test_recording_again_rebuilds_rather_than_appends(journal):
    before = open(journal["path"], "rb").read()
    record_trials(journal["folder"])
    assert len(load(journal["path"]).trials) == len(journal["trials"])
    assert len(open(journal["path"], "rb").read()) == len(before)
    assert not [f for f in os.listdir(journal["folder"]) if f.startswith(".optuna.journal")]  # no temp files left


def test_optuna_dashboard_serves_the_sweep(journal, tmp_path):
    pytest.importorskip("optuna_dashboard",
                        reason="optuna-dashboard is the optional extra: pip install -e '.[dashboard]'")
    with dashboard(journal["path"], tmp_path / "dashboard.log") as base:
        (summary,) = get(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == journal["spec"]["name"]
        detail = get(f"{base}/api/studies/{summary['study_id']}")
        served = {attr(t, "trial_id"): t for t in detail["trials"]}
        assert sorted(served) == sorted(r["trial_id"] for r in journal["trials"])
        for row in journal["trials"]:
            t = served[row["trial_id"]]
            assert t["state"].upper() == STATES[row["status"]]
            assert {p["name"] for p in t["params"]} == {k for k in journal["spec"]["params"] if row[k] != ""}
            assert [v["step"] for v in t["intermediate_values"]] == list(range(1, int(row["epochs"]) + 1))
        assert detail["directions"] == [{"max": "maximize", "min": "minimize"}[m] for _, m in
                                        _objectives(journal["spec"])]
