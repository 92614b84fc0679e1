"""Published test accuracies that the ``paper`` profile reproduces, with their sources.

Reports of ``paper``-profile records show them beside the measured numbers (``bench.reports``).
Keys are what a record's spec says: ``(dataset, condition, model)``; values are percentages as
printed in the source. Only numbers a source prints belong here, never ones read off a plot.
"""

from __future__ import annotations

HIPPO_PAPER = "Gu et al., HiPPO (NeurIPS 2020): the timescale-robustness table, as the HiPPO blog post prints it"
HIPPO_PAPER_PMNIST = "Gu et al., HiPPO (NeurIPS 2020), Tables 4 and 5"

# (dataset, condition, model) -> (test accuracy %, source)
PUBLISHED: dict[tuple[str, str, str], tuple[float, str]] = {
    **{
        ("character-trajectories", condition, model): (value, HIPPO_PAPER)
        for condition, row in {
            "100Hz->200Hz": {"lstm": 25.4, "gru-d": 23.1, "ode-rnn": 41.8, "ncde": 44.7, "lmu": 6.0, "hippo-legs": 88.8},
            "200Hz->100Hz": {"lstm": 64.6, "gru-d": 25.5, "ode-rnn": 31.5, "ncde": 11.3, "lmu": 13.1, "hippo-legs": 90.1},
        }.items()
        for model, value in row.items()
    },
    ("pmnist", "pMNIST", "hippo-legs"): (98.3, HIPPO_PAPER_PMNIST),
    ("pmnist", "pMNIST", "lmu"): (97.15, HIPPO_PAPER_PMNIST),
}  # fmt: skip


def published_accuracy(dataset: str, condition: str, model: str) -> tuple[float, str] | None:
    """The published test accuracy (%) of ``model`` under ``condition`` and its source, or None."""
    return PUBLISHED.get((dataset, condition, model))
