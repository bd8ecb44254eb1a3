"""`iomt edge --train-on-mcu`: the microcontroller trains the round, its host relays.

The host keeps doing what a device's host does (windows from the MCU's sensor frames become
labelled embeddings in the sample store, MQTT, signing with the device's key), but the round's
training runs in the firmware (docs/serial-protocol.md section 7): the host pushes the newest
labelled embeddings (the backbone's int8 outputs, exactly as stored), the global head and the
round's fit settings with the round seed, and relays the int8 delta the firmware encoded with
the Pi's codec. It never trains and never re-quantises an int8 round's delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.head import Head
from firmware_bridge.errors import BridgeError
from firmware_bridge.mcu_trainer import push_embeddings, reset_ring, train_round
from firmware_bridge.protocol import commands as cmd
from firmware_bridge.protocol.int8_record import Int8Record
from fleet_protocol.messages import FitConfig
from fleet_protocol.tensor_codecs import EncodedTensor, Rounding, decode_tensor, encode_tensor
from fleet_protocol.types import Weights

NOT_SGD = "the microcontroller trains with SGD only; the round announces {optimizer!r}"


@dataclass(frozen=True)
class Quantisation:
    """The backbone's output: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class McuUpdate:
    """A round trained on the microcontroller: its int8 tensors as coded there."""

    tensors: list[EncodedTensor]
    num_examples: int
    loss: float

    @property
    def delta(self) -> Weights:
        """The delta as the aggregator will decode it."""
        return [decode_tensor(t) for t in self.tensors]

    def coded_for(self, codec: str, rng: Rounding | None) -> list[EncodedTensor]:
        """The tensors to send with the round's codec: as coded on the MCU when int8."""
        if codec == "int8":
            return self.tensors
        return [encode_tensor(d, codec, rng) for d in self.delta]


def records_to_tensors(records: list[Int8Record], head: Head) -> list[EncodedTensor]:
    """The firmware's int8 records as the fleet codec's tensors, shaped like the head."""
    if len(records) != len(head.weights):
        raise EdgeRuntimeError(
            f"the MCU sent {len(records)} tensors for a head of {len(head.weights)}"
        )
    return [
        EncodedTensor("int8", tuple(int(d) for d in w.shape), r.scale, r.values, r.indices)
        for r, w in zip(records, head.weights, strict=True)
    ]


class McuTrainer:
    """Runs rounds on the microcontroller behind a `HostDriver` (the serial source's)."""

    def __init__(self, driver: Any, quantisation: Quantisation) -> None:
        self.driver, self.quantisation = driver, quantisation

    def train(
        self,
        head: Head,
        version: int,
        fit: FitConfig,
        X: NDArray[np.floating],
        y: NDArray[np.integer],
        seed: int,
        round_id: int,
    ) -> McuUpdate:
        """Push the embeddings and the head, train the round there, read its int8 delta."""
        if fit.optimizer != "sgd":
            raise EdgeRuntimeError(NOT_SGD.format(optimizer=fit.optimizer))
        q = self._quantise(X)
        try:
            out = self.quantisation
            capacity = reset_ring(self.driver, q.shape[1], out.scale, out.zero_point)
            # the ring keeps the newest `capacity` (oldest first): push only those, so the
            # round's example count is what the microcontroller trained on
            oldest_kept = max(0, len(q) - capacity)
            push_embeddings(self.driver, q[oldest_kept:], np.asarray(y)[oldest_kept:])
            self.driver.set_head(version, list(head.weights))
            request = cmd.TrainRound(round_id, version, fit.local_epochs, fit.batch_size,
                                     fit.learning_rate, fit.momentum, fit.l2, fit.proximal_mu,
                                     seed)  # fmt: skip
            update = train_round(self.driver, request)
        except BridgeError as exc:
            raise EdgeRuntimeError(f"training on the microcontroller failed: {exc}") from exc
        tensors = records_to_tensors(update.records, head)
        return McuUpdate(tensors, update.result.num_examples, update.result.loss)

    def _quantise(self, X: NDArray[np.floating]) -> NDArray[np.int8]:
        """Stored embeddings back to the backbone's int8 (exact: they were dequantised from it)."""
        scale, zero_point = self.quantisation.scale, self.quantisation.zero_point
        q = np.rint(np.asarray(X, np.float64) / scale) + zero_point
        return np.clip(q, -128, 127).astype(np.int8)
