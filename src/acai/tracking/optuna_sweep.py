"""Optuna sweeps that resume: rerunning an interrupted `hydra/sweeper=optuna_acai` sweep continues its study.

Hydra's Optuna sweeper takes a storage, but the optuna it pins (2.x) cannot keep a study in a database next
to SQLAlchemy 2, which MLflow needs. So the study is kept as a journal: `JournaledStorage` is Optuna's own
in-memory storage that appends every change (a trial created, a parameter sampled, a value told) to a
JSON-lines file and replays that file when it starts. `ResumableOptunaSweeper` keeps the journal of a
sweep under `<trainer.checkpoint_dir>/optuna/`, named by the sweep's key (the same command: the same
overrides, search space and experiment; `n_trials` may grow), so a rerun finds it, gives up the trials
the kill cut short, and runs only the trials still to go. (The sweeper is a Hydra plugin, so it lives in
`src/hydra_plugins/acai_sweeper/`.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

# How each journaled change's arguments are written and read back (JSON values pass as they are).
ENCODE = {"set_study_directions": lambda sid, dirs: [sid, [d.name for d in dirs]],
          "set_trial_state": lambda tid, state: [tid, state.name],
          "set_trial_param": lambda tid, name, value, dist: [tid, name, value, distribution_to_json(dist)]}
DECODE = {"set_study_directions": lambda sid, dirs: [sid, [StudyDirection[d] for d in dirs]],
          "set_trial_state": lambda tid, state: [tid, TrialState[state]],
          "set_trial_param": lambda tid, name, value, dist: [tid, name, value, json_to_distribution(dist)]}
JOURNALED = ("create_new_study", "delete_study", "set_study_directions", "set_study_user_attr",
             "set_study_system_attr", "create_new_trial", "set_trial_state", "set_trial_param", "set_trial_values",
             "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr")


class JournaledStorage(InMemoryStorage):
    """Optuna's in-memory storage, every change also appended (and fsynced) to a JSON-lines journal."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)  # its folder is made at the first change: a sweep refused at start leaves nothing
        self._replaying = True
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # the last line of a journal cut off by a kill: that change never finished
                    continue
                op = entry["op"]
                getattr(self, op)(*DECODE.get(op, lambda *a: list(a))(*entry["args"]))
        self._replaying = False
        for study in self.get_all_study_summaries():  # trials a kill cut short are given up, not resumed
            for trial in self.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                self.set_trial_state(trial._trial_id, TrialState.FAIL)

    def _journal(self, op: str, args: tuple) -> None:
        if self._replaying:
            return
        line = json.dumps({"op": op, "args": ENCODE.get(op, lambda *a: list(a))(*args)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finished(self, study_name: str) -> int:
        """How many trials of that study have a value (or were pruned): those a rerun need not run again."""
        try:
            study_id = self.get_study_id_from_name(study_name)
        except KeyError:
            return 0
        done = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(self.get_all_trials(study_id, deepcopy=False, states=done))


def _journaled(op: str):
    def method(self: JournaledStorage, *args: Any) -> Any:
        if op == "create_new_trial" and len(args) > 1 and args[1] is not None:
            raise NotImplementedError("JournaledStorage does not journal trials created from a template")
        result = getattr(InMemoryStorage, op)(self, *args)
        self._journal(op, args)
        return result

    method.__name__ = op
    return method


for _op in JOURNALED:
    setattr(JournaledStorage, _op, _journaled(_op))
