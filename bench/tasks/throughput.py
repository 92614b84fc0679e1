"""The ``throughput`` task: timing only (training, inference and streaming inference samples/s,
peak memory), every model at one size; and its report. :func:`throughput_phase` is the timed
phase the classification task runs after training too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import seaborn as sns
import torch

from bench import reports
from bench.models import create_model, get_model_entry
from bench.records import RunSpec
from bench.reports import plt  # pyplot on the Agg backend (files only)
from bench.settings import TrainSettings
from bench.tasks.base import THROUGHPUT_METRICS, RunContext, Task, make_data_module
from bench.throughput import has_step_mode, measure_streaming, measure_throughput


def throughput_phase(model: torch.nn.Module, dm: Any, settings: TrainSettings, ctx: RunContext) -> dict[str, Any]:
    """The timed throughput phase on one training batch ({} when the settings time none)."""
    if not settings.throughput_iters:
        return {}
    batch = next(iter(dm.train_dataloader()))
    return measure_throughput(model, batch, ctx.device, warmup=settings.throughput_warmup,
                              iters=settings.throughput_iters, lr=settings.lr,
                              weight_decay=settings.weight_decay)  # fmt: skip


def run_throughput(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    """Time training and inference steps (and streaming steps for a model with a recurrent form)
    without training a model to the end; the record's fields."""
    model_cls = get_model_entry(spec.model).load()
    dm = make_data_module(spec, ctx.data_dir, getattr(model_cls, "batch_extras", {}))
    dm.setup("fit")
    model = create_model(spec.model, dm.num_inputs, dm.num_classes, **spec.model_args)
    settings = TrainSettings.from_dict(spec.train)
    result = throughput_phase(model, dm, settings, ctx)
    if settings.throughput_iters and has_step_mode(model):  # a recurrent form
        batch = next(iter(dm.train_dataloader()))
        streaming = measure_streaming(model, batch, ctx.device, warmup=min(settings.throughput_warmup, 1),
                                      iters=min(settings.throughput_iters, 3))  # fmt: skip
        result.update({k: v for k, v in streaming.items() if k.startswith(("stream_", "state_bytes"))})
    return {
        "model_config": dict(getattr(model, "config", {})),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "data_protocol": dm.describe() if hasattr(dm, "describe") else dict(spec.data),
        "throughput": result,
        "peak_memory_bytes": result.get("peak_memory_bytes"),
        "metrics": {k: v for k, v in result.items() if k.endswith("_per_s")},
    }


def throughput_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[reports.Table], list[Path]]:
    measures = ["train_samples_per_s", "infer_samples_per_s", "train_steps_per_s", "infer_steps_per_s"]
    # streaming inference (one step at a time through the model's recurrent form), where it has one
    measures += [m for m in ("stream_samples_per_s", "stream_steps_per_s") if ok[m].notna().any()]
    long = ok.melt(id_vars=["model", "seed", *(["marks"] if "marks" in ok else [])], value_name="value",
                   var_name="measure", value_vars=measures)  # fmt: skip
    speed = reports.pivot_table(long, "value", row="model", column="measure", fmt=".4g",
                        caption=f"{suite}: throughput (median of timed iterations), mean ± std over seeds (n); "
                                f"fastest in bold. Condition: {', '.join(dict.fromkeys(ok['condition']))}. "
                                f"Profile: {profile}.")  # fmt: skip
    mem = ok.assign(peak_mb=(ok["peak_memory_bytes"].fillna(ok["peak_rss_bytes"])) / 2**20,
                    memory="peak memory (MiB)", params="parameters")  # fmt: skip
    memory = reports.pivot_table(mem, "peak_mb", row="model", column="memory", fmt=".1f", higher_is_better=False,
                         caption=f"{suite}: peak memory (CUDA max allocated; on CPU the process's peak RSS).")  # fmt: skip
    tables = [speed, memory]
    if ok["state_bytes_per_series"].notna().any():
        tables.append(reports.pivot_table(ok.assign(state_kb=ok["state_bytes_per_series"] / 1024, memory="streaming state (KiB per series)"),
                            "state_kb", row="model", column="memory", fmt=".1f", higher_is_better=False,
                            caption=f"{suite}: memory of the streaming state per series: constant in the sequence length."))  # fmt: skip
    if failed:
        speed.notes.append(f"Failed runs (not in the table): {failed}.")
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * ok["model"].nunique() + 2), 4))
    sns.barplot(data=long[long["measure"].str.endswith("samples_per_s")], x="model", y="value", hue="measure", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("samples/s")
    ax.tick_params(axis="x", rotation=45)
    return tables, reports.save_figure(fig, folder, "throughput")


TASK = Task(
    "throughput", "timing only: training, inference and streaming inference",
    run=run_throughput, report=throughput_report, compare=THROUGHPUT_METRICS,
    headline=("train_samples_per_s", "train {:.1f} samples/s"), settings=True, on_device=True,
)  # fmt: skip
