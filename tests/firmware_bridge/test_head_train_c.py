"""The firmware's head trainer (core/iomt_head_train.c, ring, int8 codec, SplitMix64), built
with the host gcc, against numpy's `local_update` and the Pi's int8 codec: same embeddings,
labels, global head, fit settings and seed -> the same delta and the same int8 bytes."""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.head import Head
from edge_runtime.local_update import local_update
from firmware_bridge.protocol.int8_record import Int8Record
from firmware_bridge.protocol.model_messages import HeadSet
from firmware_bridge.train_harness import TrainReply, TrainRequest, build_host_tool, run_host_tool
from fleet_protocol.messages import FitConfig
from fleet_protocol.portable_rng import PortableRng
from fleet_protocol.tensor_codecs import EncodedTensor, encode_tensor

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs host gcc")

EMBEDDING_SCALE, EMBEDDING_ZERO_POINT = 0.0421, -7
TRAIN_STATUS = {0: "ok", -1: "no data", -2: "shape", -3: "too large", -4: "settings"}


@pytest.fixture(scope="module")
def train_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_host_tool(tmp_path_factory.mktemp("train") / "head_train_tool")


@dataclass(frozen=True)
class Case:
    """What both sides train on."""

    head: Head
    fit: FitConfig
    q: np.ndarray  # (examples, inputs) int8 backbone outputs
    y: np.ndarray  # (examples,)
    seed: int

    @property
    def embeddings(self) -> np.ndarray:
        """The embeddings as the Pi dequantises them."""
        return (EMBEDDING_SCALE * (self.q.astype(np.float32) - EMBEDDING_ZERO_POINT)).astype(
            np.float32
        )


def make_case(
    inputs: int, hidden: int, classes: int, examples: int, fit: FitConfig, seed: int
) -> Case:
    rng = np.random.default_rng(seed)
    weights = [
        rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)), rng.normal(0, 0.05, hidden),
        rng.normal(0, 1 / np.sqrt(hidden), (hidden, classes)), rng.normal(0, 0.05, classes),
    ]  # fmt: skip
    head = Head.from_weights(weights, ("relu", "softmax"))
    y = rng.integers(0, classes, examples)
    centres = rng.integers(-60, 60, (classes, inputs))
    q = np.clip(centres[y] + rng.integers(-40, 40, (examples, inputs)), -128, 127).astype(np.int8)
    return Case(head, fit, q, y.astype(np.int64), seed)


def run_firmware(tool: Path, case: Case, stochastic: bool = True) -> TrainReply:
    fit = case.fit
    request = TrainRequest(
        fit.local_epochs, fit.batch_size, fit.learning_rate, fit.momentum, fit.l2,
        fit.proximal_mu, case.seed, HeadSet(3, tuple(case.head.weights)).to_payload(),
        case.q, case.y, EMBEDDING_SCALE, EMBEDDING_ZERO_POINT, stochastic,
    )  # fmt: skip
    reply = run_host_tool(tool, request)
    shaped = [d.reshape(w.shape) for d, w in zip(reply.delta, case.head.weights, strict=False)]
    return replace(reply, delta=shaped)


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-30))


def same_int8_fraction(records: list[Int8Record], reference: list[EncodedTensor]) -> float:
    same = total = 0
    for record, encoded in zip(records, reference, strict=True):
        assert (record.indices is None) == (encoded.indices is None)
        ours, theirs = np.frombuffer(record.values, np.int8), np.frombuffer(encoded.values, np.int8)
        same += int(np.sum(ours == theirs)) if ours.shape == theirs.shape else 0
        total += theirs.size
    return same / total


FITS = {
    "sgd-momentum-l2-prox": FitConfig(3, 32, 0.05, "sgd", 0.9, 0.01, 1e-4),
    "plain-sgd-odd-batches": FitConfig(2, 24, 0.1, "sgd", 0.0, 0.0, 0.0),
    "fedprox-strong": FitConfig(4, 16, 0.02, "sgd", 0.5, 0.5, 1e-3),
}


@pytest.mark.parametrize("name", FITS)
def test_firmware_delta_equals_numpy_local_update(train_tool: Path, name: str) -> None:
    # Prepare: the watch head's shape on the MCU (24 inputs, 32 hidden, 7 classes), 256 windows
    case = make_case(24, 32, 7, 256, FITS[name], seed=zlib.crc32(name.encode()))
    # Execute
    firmware = run_firmware(train_tool, case)
    reference = local_update(case.head, case.fit, case.embeddings, case.y, case.seed)
    # Assert: float deltas within 1e-4 relative, tensor by tensor
    assert firmware.status == 0
    assert firmware.num_examples == reference.num_examples == 256
    for ours, theirs in zip(firmware.delta, reference.delta, strict=True):
        assert np.linalg.norm(theirs) > 0
        assert relative_error(ours, theirs) <= 1e-4
    assert firmware.loss == pytest.approx(reference.loss, rel=1e-4)


def test_firmware_int8_delta_is_the_pis_codec(train_tool: Path) -> None:
    # Prepare
    case = make_case(24, 32, 7, 256, FITS["sgd-momentum-l2-prox"], seed=20261202)
    # Execute: the Pi encodes its delta with the round seed's stream (edge_runtime.fed_client)
    firmware = run_firmware(train_tool, case)
    delta = local_update(case.head, case.fit, case.embeddings, case.y, case.seed).delta
    rng = PortableRng(case.seed)
    pi = [encode_tensor(d, "int8", rng) for d in delta]
    # Assert: the same scale, and the same int8 value on >= 99% of the elements
    for record, encoded in zip(firmware.records, pi, strict=True):
        assert record.scale == pytest.approx(encoded.scale, rel=1e-4)
    assert same_int8_fraction(firmware.records, pi) >= 0.99


def test_firmware_codec_on_the_pis_own_delta_is_bit_identical(train_tool: Path) -> None:
    # Prepare: a round-half-to-even run and a stochastic one of the same case
    case = make_case(16, 8, 4, 40, FITS["plain-sgd-odd-batches"], seed=5)
    # Execute
    plain = run_firmware(train_tool, case, stochastic=False)
    stochastic = run_firmware(train_tool, case, stochastic=True)
    # Assert: the C codec on the C delta gives what the Python codec gives on that same delta
    rng = PortableRng(case.seed)
    for tensor, a, b in zip(plain.delta, plain.records, stochastic.records, strict=True):
        assert a.values == encode_tensor(tensor, "int8").values
        assert b.values == encode_tensor(tensor, "int8", rng).values
        assert a.scale == encode_tensor(tensor, "int8").scale


def test_different_seeds_shuffle_differently_and_both_sides_follow(train_tool: Path) -> None:
    # Prepare
    first = make_case(24, 16, 5, 100, FITS["plain-sgd-odd-batches"], seed=1)
    second = Case(first.head, first.fit, first.q, first.y, seed=2)
    # Execute
    deltas = [run_firmware(train_tool, c).delta[0] for c in (first, second)]
    cases = (first, second)
    numpy = [local_update(c.head, c.fit, c.embeddings, c.y, c.seed).delta[0] for c in cases]
    # Assert
    assert relative_error(deltas[0], deltas[1]) > 1e-3
    for ours, theirs in zip(deltas, numpy, strict=True):
        assert relative_error(ours, theirs) <= 1e-4


def ring_capacity(width: int) -> int:
    """Entries the ring keeps (core/iomt_embedding_ring.h): the RAM ring, then all 4 KiB spill
    pages but the one being erased, at most 4,096."""
    ram = min(32768 // width, 1024)
    per_page = (4096 - 12) // (1 + width)
    return min(ram + (8 - 1) * per_page, 4096)


SPILLS = {  # width, embeddings pushed: beyond the RAM ring, and beyond the whole bound
    "watch-width-spilled": (24, 2000),
    "watch-width-wrapped": (24, 3000),
    "wide-spill-wrapped": (128, 1000),
    "narrow-at-the-total-bound": (8, 4500),
}


@pytest.mark.parametrize("name", SPILLS)
def test_spilled_ring_trains_on_ram_and_flash_entries_oldest_first(
    train_tool: Path, name: str
) -> None:
    # Prepare: more embeddings than the RAM ring holds (1,024 entries or 32 KiB)
    width, pushed = SPILLS[name]
    kept = ring_capacity(width)
    assert pushed > min(32768 // width, 1024)
    case = make_case(
        width, 16, 5, pushed, FITS["sgd-momentum-l2-prox"], seed=zlib.crc32(name.encode())
    )
    newest = Case(case.head, case.fit, case.q[-kept:], case.y[-kept:], case.seed)
    # Execute
    firmware = run_firmware(train_tool, case)
    reference = local_update(newest.head, newest.fit, newest.embeddings, newest.y, newest.seed)
    # Assert: what the Pi's store hands out with limit=capacity, RAM and flash entries alike
    assert firmware.status == 0
    assert firmware.num_examples == reference.num_examples == min(pushed, kept)
    for ours, theirs in zip(firmware.delta, reference.delta, strict=True):
        assert relative_error(ours, theirs) <= 1e-4
    rng = PortableRng(case.seed)
    pi = [encode_tensor(d, "int8", rng) for d in reference.delta]
    assert same_int8_fraction(firmware.records, pi) >= 0.99


def test_spill_is_not_the_ram_ring_alone(train_tool: Path) -> None:
    # Prepare: 1,500 watch embeddings; the RAM ring alone would keep the newest 1,024
    case = make_case(24, 16, 5, 1500, FITS["plain-sgd-odd-batches"], seed=77)
    ram_only = Case(case.head, case.fit, case.q[-1024:], case.y[-1024:], case.seed)
    # Execute
    firmware = run_firmware(train_tool, case)
    ram = local_update(ram_only.head, ram_only.fit, ram_only.embeddings, ram_only.y, case.seed)
    # Assert: the spilled entries took part
    assert firmware.num_examples == 1500
    assert relative_error(firmware.delta[0], ram.delta[0]) > 1e-3


def test_labels_beyond_the_head_and_empty_rings_are_refused(train_tool: Path) -> None:
    # Prepare
    case = make_case(8, 4, 3, 10, FITS["plain-sgd-odd-batches"], seed=4)
    bad_label = Case(case.head, case.fit, case.q, np.full(10, 3), case.seed)
    empty = Case(case.head, case.fit, case.q[:0], case.y[:0], case.seed)
    # Execute / Assert
    assert TRAIN_STATUS[run_firmware(train_tool, bad_label).status] == "shape"
    assert TRAIN_STATUS[run_firmware(train_tool, empty).status] == "no data"
