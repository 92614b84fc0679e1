"""A tiny UEA dataset in the archive's ``.ts`` format, written by the tests that need one."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def toy_ts(rng: np.random.Generator, n_per_class: int) -> str:
    """Two classes ("up", "down") of 2-channel series of 5-11 steps, one channel 2 steps shorter."""
    lines = [
        "@problemName Toy",
        "@missing true",
        "@dimensions 2",
        "@equalLength false",
        "@classLabel true up down",
        "@data",
    ]
    for label in ("up", "down"):
        for _ in range(n_per_class):
            length = int(rng.integers(5, 12))
            x = rng.normal(size=length).round(3).astype(str).tolist()
            y = rng.normal(size=length - 2).round(3).astype(str).tolist()  # shorter channel
            lines.append(f"{','.join(x)}:{','.join(y)}:{label}")
    return "\n".join(lines) + "\n"


def write_toy_dataset(root: Path, with_arff: bool = False) -> Path:
    """``root/Toy/Toy_{TRAIN,TEST}.ts`` (40 series each); with per-dimension ``.arff`` files of other
    values too when ``with_arff`` (the ``.ts`` files must win). Returns ``root``."""
    rng = np.random.default_rng(0)
    folder = root / "Toy"
    folder.mkdir(parents=True)
    (folder / "Toy_TRAIN.ts").write_text(toy_ts(rng, 20))
    (folder / "Toy_TEST.ts").write_text(toy_ts(rng, 20))
    for split in ("TRAIN", "TEST") if with_arff else ():
        for d in (1, 2):
            rows = "".join("9,9,up\n" for _ in range(40))
            (folder / f"ToyDimension{d}_{split}.arff").write_text(
                f"@relation t\n@attribute a numeric\n@attribute b numeric\n@attribute c {{up,down}}\n@data\n{rows}"
            )
    return root
