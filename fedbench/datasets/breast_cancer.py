"""The Wisconsin breast-cancer data that ships with scikit-learn, split vertically for a small two-party demo.

It is the classic first vertical-federated example (569 rows, 30 features): small enough for
Paillier-encrypted training in seconds, and bundled inside scikit-learn, so nothing is downloaded. The CSV is
read from scikit-learn's installed files without importing scikit-learn (seconds a sandbox start would pay).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from fedbench.datasets.splits import vertical_split

BREAST_CANCER_LABEL = "y"
N_GUEST_FEATURES = 10


_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
FEATURES = (
    *(f"mean_{m}" for m in _MEASURES),
    *(f"{m}_error" for m in _MEASURES),
    *(f"worst_{m}" for m in _MEASURES),
)
"""The 30 features in scikit-learn's order, its names in snake case ("mean radius" -> mean_radius)."""


def _csv() -> Path:
    """scikit-learn's copy of the data (its first line: rows, features, class names; then one row per line)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the breast-cancer demo data needs scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "breast_cancer.csv"


def breast_cancer_table() -> pd.DataFrame:
    """scikit-learn's breast-cancer data as one table: string `id` (the row number), `y`, then 30 features."""
    data = np.loadtxt(_csv(), delimiter=",", skiprows=1)
    features = pd.DataFrame(data[:, :-1], columns=list(FEATURES))
    table = pd.DataFrame({"id": [str(i) for i in range(len(features))], BREAST_CANCER_LABEL: data[:, -1]})
    table[BREAST_CANCER_LABEL] = table[BREAST_CANCER_LABEL].astype("int64")
    return pd.concat([table, features], axis=1)


def breast_cancer_vertical(overlap: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (guest, host): guest has `id`, `y` and the 10 "mean" features, host `id` and the other 20.

    `y` is encoded as scikit-learn gives it: 0 = malignant, 1 = benign (212 and 357 rows).
    """
    table = breast_cancer_table()
    host_features = list(table.columns[2 + N_GUEST_FEATURES :])
    return vertical_split(
        table, label_column=BREAST_CANCER_LABEL, host_features=host_features, overlap=overlap, seed=seed
    )
