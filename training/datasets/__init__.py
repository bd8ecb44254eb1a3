"""Dataset loaders, simulators and the window-dataset format every other package reads.

Importing this package is cheap (numpy only); each source module is imported on demand.
"""

from training.datasets.errors import DatasetError, DatasetFileError, DatasetFormatError
from training.datasets.normalisation import Normalisation, apply_normalisation, fit_normalisation
from training.datasets.sources import SOURCES, prepare_dataset
from training.datasets.window_dataset import (
    WindowDataset,
    load_window_dataset,
    save_window_dataset,
)

__all__ = [
    "SOURCES",
    "DatasetError",
    "DatasetFileError",
    "DatasetFormatError",
    "Normalisation",
    "WindowDataset",
    "apply_normalisation",
    "fit_normalisation",
    "load_window_dataset",
    "prepare_dataset",
    "save_window_dataset",
]
