"""UEA CharacterTrajectories under the HiPPO / Neural CDE reference protocol.

3 channels (x velocity, y velocity, pen-tip force), 20 classes, 2858 series recorded at 200 Hz,
padded to 182 steps; split 2000 / 429 / 429. Rate factor 0.5 gives 100 Hz and 91 steps.
Everything else is :class:`bench.data.uea.UEADataModule` (see its module docstring).
"""

from __future__ import annotations

import os
from typing import Any

from bench.data.base import check_rate
from bench.data.uea import UEADataModule, rate_indices

NAME = "CharacterTrajectories"
SAMPLE_RATE_HZ = 200.0
NUM_INPUTS, NUM_CLASSES, MAX_LENGTH = 3, 20, 182


class CharacterTrajectoriesDataModule(UEADataModule):
    """CharacterTrajectories loaders; ``time="physical"`` steps 5 ms at 200 Hz, 10 ms at 100 Hz.

    Same keywords as :class:`UEADataModule` without ``name`` and ``sample_rate_hz`` (fixed).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        train_hz: float = 1.0,
        eval_hz: float = 1.0,
        time: str = "index",
        missing_rate: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(
            NAME,
            data_dir,
            train_hz,
            eval_hz,
            time,
            missing_rate,
            batch_size,
            seed,
            sample_rate_hz=SAMPLE_RATE_HZ,
            **kwargs,
        )

    # Known without reading the files, so a model can be built before the data is there.
    @property
    def num_inputs(self) -> int:
        return NUM_INPUTS

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def seq_len(self, hz: float | None = None) -> int:
        return len(rate_indices(MAX_LENGTH, self.train_hz if hz is None else check_rate("hz", hz)))
