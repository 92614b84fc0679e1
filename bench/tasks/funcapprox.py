"""The ``funcapprox`` task: online function approximation with :mod:`hippo.funcapprox` (CPU,
float64), one measure and memory size N per run; and its report (MSE and steps/s per N)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import seaborn as sns
import torch

from bench import reports
from bench.records import RunSpec
from bench.reports import plt  # pyplot on the Agg backend (files only)
from bench.tasks.base import CompareMetric, RunContext, Task
from hippo.funcapprox import CODE_VERSION, approximate_function


def run_funcapprox(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    """Project white noise online onto measure ``spec.model``'s basis of order N (float64) and
    reconstruct it: MSE and steps/s."""
    result = approximate_function(spec.model, seed=spec.seed, dtype=torch.float64, **spec.model_args)
    metrics = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
    metrics["mse_at"] = {str(k): v for k, v in (metrics.get("mse_at") or {}).items()}
    return {"metrics": metrics, "train_seconds": metrics.get("seconds")}


def funcapprox_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[reports.Table], list[Path]]:
    ok = ok.assign(measure=ok["model"], column="N=" + ok["N"].astype(int).astype(str))
    ok = ok.sort_values("N", kind="stable")
    mse = reports.pivot_table(ok, "mse", row="measure", column="column", fmt=".3g", higher_is_better=False,
                      caption=f"{suite}: reconstruction MSE over the whole history, mean ± std over seeds (n); "
                              f"lowest in bold. Profile: {profile}.")  # fmt: skip
    speed = reports.pivot_table(ok, "steps_per_s", row="measure", column="column", fmt=".3g",
                        caption=f"{suite}: online update speed (steps/s); highest in bold. Profile: {profile}.")  # fmt: skip
    if failed:
        mse.notes.append(f"Failed runs (not in the table): {failed}.")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=ok, x="N", y="mse", hue="measure", marker="o", errorbar="sd", ax=ax)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylabel("reconstruction MSE")
    return [mse, speed], reports.save_figure(fig, folder, "mse_vs_n")


TASK = Task(
    "funcapprox", "online function approximation with hippo (CPU, float64)",
    run=run_funcapprox, report=funcapprox_report,
    compare=(CompareMetric("mse", "accuracy", lower_is_better=True), CompareMetric("steps_per_s", "throughput")),
    headline=("mse", "mse {:.3g}"), version=CODE_VERSION,
)  # fmt: skip
