"""The report of a study (``trkx-hpo report``): trials table, best config, parameter importances, plots.

Written into one folder::

    report.md                 the summary: objective, trials by state, best trial, importances, the table
    trials.csv                one row per trial (number, state, value, epochs reported, parameters, wall time,
                              run folder, error)
    best_config.yaml          the base config with the best trial's parameters, resolved (every key): what
                              ``trkx-train --config best_config.yaml`` trains as is (run.name <study>-best)
    importances.json          PED-ANOVA parameter importances (Optuna; no extra dependency) over complete trials
    history.png  parallel_coordinate.png  intermediate_values.png  importances.png
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
from pathlib import Path
from typing import Optional

from trkx_tf.config import Config, save_config
from trkx_tf.errors import ConfigError
from trkx_tf.files import write_text_atomic
from trkx_tf.hpo.study import StudyError, open_storage


def load_study(study: str, storage: os.PathLike | str):
    """Loads a recorded study.

    Raises:
      StudyError: no study of that name in the storage (the message lists the ones there are).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not Path(storage).exists():
        raise StudyError(f"--storage {storage}: no such file")
    st = open_storage(storage)
    try:
        return optuna.load_study(study_name=study, storage=st)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(st)]
        raise StudyError(f"no study {study!r} in {storage} (there: {', '.join(names) or 'none'})") from None


def best_config(study) -> Config:
    """The study's base config (as recorded when the study was made) with the best trial's parameters.

    Returns:
      The validated config, ``run.name`` = ``<study>-best``.

    Raises:
      StudyError: the study has no complete trial.
      ConfigError: the parameters no longer fit the schema (the config schema changed since the study).
    """
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyError(f"study {study.study_name!r} has no complete trial yet")
    data = copy.deepcopy(study.user_attrs["base_config"])
    for key, value in {**study.best_trial.params, "run.name": f"{study.study_name}-best"}.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    from pydantic import ValidationError

    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"best config of {study.study_name!r}: {exc.errors()[0]['msg']}") from None


def trial_rows(study) -> list[dict]:
    """One row per trial: number, state, value, epochs, each parameter, wall time, run folder, error."""
    keys = sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.trials:
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "epochs": len(t.intermediate_values)}
        row.update({k: t.params.get(k) for k in keys})
        row.update(wall_s=t.user_attrs.get("wall_s"), run_dir=t.user_attrs.get("run_dir", ""),
                   error=t.user_attrs.get("error", ""))
        rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _markdown_table(rows: list[dict], skip=("run_dir",)) -> str:
    if not rows:
        return "(no trials)\n"
    cols = [c for c in rows[0] if c not in skip]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def importances(study) -> dict:
    """PED-ANOVA importances of the parameters over the complete trials ({} with fewer than 2 of them)."""
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    return optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())


def _plots(study, out: Path, have_importances: bool) -> list[str]:
    """Writes the PNG plots; returns their file names."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as vm

    plots = {"history.png": lambda: vm.plot_optimization_history(study),
             "parallel_coordinate.png": lambda: vm.plot_parallel_coordinate(study),
             "intermediate_values.png": lambda: vm.plot_intermediate_values(study)}
    if have_importances:
        plots["importances.png"] = lambda: vm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    written = []
    for name, make in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's "experimental" warning of its matplotlib plots
            ax = make()
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def write_report(study_name: str, storage: os.PathLike | str, out: os.PathLike | str,
                 plots: bool = True) -> Path:
    """Writes the report of a study into ``out``.

    Args:
      study_name: the study.
      storage: its storage (journal file or ``*.db``).
      out: the report folder (created).
      plots: also draw the PNG plots.

    Returns:
      The path of ``report.md``.

    Raises:
      StudyError: no such study.
    """
    from optuna.trial import TrialState

    study = load_study(study_name, storage)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    with open(out / "trials.csv", "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    imp = importances(study)
    write_text_atomic(out / "importances.json", json.dumps(imp, indent=2) + "\n")
    spec = study.user_attrs.get("space", {})
    objective = spec.get("objective", {})
    by_state = {}
    for t in study.trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    lines = [f"# Study `{study_name}`", "",
             f"- storage: `{storage}`; trials folder: `{study.user_attrs.get('trials_dir', '')}`",
             f"- base config: `{study.user_attrs.get('config_path')}`"
             + (f" with `--set {' --set '.join(study.user_attrs.get('overrides', []))}`"
                if study.user_attrs.get("overrides") else ""),
             f"- objective: `{objective.get('metric')}` ({objective.get('direction')}, {objective.get('reduce')} "
             f"epoch); sampler {spec.get('sampler', {}).get('name')}, pruner {spec.get('pruner', {}).get('name')}",
             f"- trials: {len(study.trials)} (" + ", ".join(f"{v} {k.lower()}" for k, v in sorted(by_state.items()))
             + ")", ""]
    if complete:
        best = study.best_trial
        cfg = best_config(study)
        save_config(cfg, out / "best_config.yaml")
        lines += ["## Best trial", "",
                  f"trial {best.number}: {objective.get('metric')} = {best.value:.5g}, run folder "
                  f"`{best.user_attrs.get('run_dir', '')}`", "",
                  "```", "trkx-train --config best_config.yaml   # or, from the base config:",
                  " ".join(["trkx-train", f"--config {study.user_attrs.get('config_path')}",
                            *(f"--set {o}" for o in study.user_attrs.get("overrides", [])),
                            *(f"--set {k}={json.dumps(v)}" for k, v in best.params.items())]),
                  "```", ""]
    else:
        lines += ["No complete trial yet: no best config.", ""]
    if imp:
        lines += ["## Parameter importances (PED-ANOVA)", "", "| parameter | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in imp.items()] + [""]
    if plots and study.trials:
        names = _plots(study, out, bool(imp))
        lines += ["## Plots", ""] + [f"![{n}]({n})" for n in names] + [""]
    lines += ["## Trials", "", _markdown_table(rows)]
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report


def summary_line(study_name: str, storage: os.PathLike | str) -> Optional[str]:
    """One line: trials by state and the best value so far."""
    from optuna.trial import TrialState

    study = load_study(study_name, storage)
    counts = {}
    for t in study.trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        text += f"; best trial {study.best_trial.number}: {study.best_value:.5g} {study.best_trial.params}"
    return f"study {study_name!r}: {text}"
