"""The (epsilon, delta) the installed global head was trained with, as the clinician sees it.

The aggregator stamps every published head (`GlobalModel.dp_epsilon`, `dp_delta`); the device
keeps the installed head's stamp in its sample store (`meta` key `model_privacy`), so the
patient report can say what privacy the model behind its predictions was trained with.
Pure apart from `read_model_privacy` (a read-only query).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

META_KEY = "model_privacy"


@dataclass(frozen=True)
class ModelPrivacy:
    """A head version and its central-DP guarantee (None: published without DP)."""

    version: int
    epsilon: float | None
    delta: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelPrivacy:
        raw = json.loads(text)
        return cls(int(raw["version"]), raw.get("epsilon"), raw.get("delta"))


def read_model_privacy(store_path: Path) -> ModelPrivacy | None:
    """The installed head's stamp from a sample store (None: nothing installed from a fleet)."""
    uri = f"file:{store_path.resolve()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else ModelPrivacy.from_json(str(row[0]))


def privacy_sentence(privacy: ModelPrivacy | None) -> str:
    """One sentence for the report: what guarantee the model's training gave its contributors."""
    if privacy is None:
        return "No federated model version is recorded on this device."
    if privacy.epsilon is None or privacy.delta is None:
        return (f"The model (federated version {privacy.version}) was trained without a "
                "differential-privacy guarantee.")  # fmt: skip
    return (
        f"This model (federated version {privacy.version}) was trained with (ε, δ) = "
        f"({privacy.epsilon:.2f}, {privacy.delta:g}) of client-level differential privacy: "
        "no single contributing device's data changes what the model could reveal by more "
        f"than a factor e^{privacy.epsilon:.2f}, except with probability {privacy.delta:g}."
    )
