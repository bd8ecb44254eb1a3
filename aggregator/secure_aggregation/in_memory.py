"""Run one secure aggregation round in memory: for tests, `iomt simulate` and cost figures.

Messages are handed between `SecAggClient`s and a `SecAggServer` as the aggregator would route
them; devices in `drop_before_input` vanish after sharing keys (their pairwise masks are then
rebuilt from shares), devices in `drop_at_unmask` send their input but never answer phase 4.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from aggregator.secure_aggregation.server import SecAggServer, decode_weighted_mean
from fleet_protocol.secure_aggregation.client import SecAggClient, encode_weighted_update
from fleet_protocol.secure_aggregation.messages import (
    EncryptedShare,
    KeyAdvertisement,
    MaskedInput,
    SecAggConfig,
    UnmaskResponse,
)
from fleet_protocol.types import Weights

_ID_OVERHEAD = 16  # a device id on the wire, roughly


@dataclass(frozen=True)
class RoundOutcome:
    """The unmasked weighted mean, who took part, and what it cost each device."""

    mean_delta: Weights
    total_examples: float
    weighted_sum: NDArray[np.float64]  # decoded sum of [w * delta..., w] over survivors
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    masked_inputs: dict[str, MaskedInput]
    bytes_up_per_device: float
    bytes_down_per_device: float
    client_ms_per_device: float
    server_ms: float
    phase_ms: dict[str, float] = field(default_factory=dict)


def _advert_bytes(a: KeyAdvertisement) -> int:
    return len(a.cipher_public) + len(a.mask_public) + _ID_OVERHEAD


def _share_bytes(s: EncryptedShare) -> int:
    return len(s.ciphertext) + 2 * _ID_OVERHEAD


def _response_bytes(r: UnmaskResponse) -> int:
    shares = list(r.self_mask_shares.values()) + list(r.mask_key_shares.values())
    return sum(len(s) + _ID_OVERHEAD for s in shares) + _ID_OVERHEAD


def run_round(
    updates: dict[str, tuple[Weights, int]],
    config: SecAggConfig,
    drop_before_input: Iterable[str] = (),
    drop_at_unmask: Iterable[str] = (),
) -> RoundOutcome:
    """Secure-aggregate `{device: (delta, num_examples)}` with the given dropouts."""
    early, late = set(drop_before_input), set(drop_at_unmask)
    clients = {d: SecAggClient(d, config) for d in sorted(updates)}
    server = SecAggServer(config)
    up: dict[str, int] = dict.fromkeys(clients, 0)
    clock = _Stopwatch()

    with clock.client("advertise"):
        ads = [c.advertise() for c in clients.values()]
    with clock.server():
        listing = server.collect_advertisements(ads)
    for a in ads:
        up[a.device_id] += _advert_bytes(a)
    with clock.client("share_keys"):
        sealed = [s for c in clients.values() for s in c.share_keys(listing)]
    for s in sealed:
        up[s.sender] += _share_bytes(s)
    with clock.server():
        routed = server.route_shares(sealed)
    with clock.client("masked_input"):
        inputs = [
            clients[d].masked_input(encode_weighted_update(*updates[d], config), routed[d])
            for d in clients
            if d not in early
        ]
    for m in inputs:
        up[m.device_id] += m.values.nbytes + _ID_OVERHEAD
    with clock.server():
        request = server.collect_inputs(inputs)
    with clock.client("unmask"):
        responses = [clients[d].unmask(request) for d in request.survivors if d not in late]
    for r in responses:
        up[r.device_id] += _response_bytes(r)
    with clock.server():
        total = server.unmask(responses, request)
        shapes = [tuple(w.shape) for w in next(iter(updates.values()))[0]]
        mean, examples = decode_weighted_mean(total, shapes, config)
    down = _advert_bytes(ads[0]) * len(ads) + sum(_share_bytes(s) for s in sealed) / len(clients)
    return RoundOutcome(
        mean, examples, config.fixed_point.decode(total), request.survivors, request.dropped,
        {m.device_id: m for m in inputs},
        float(np.mean(list(up.values()))), float(down),
        clock.client_total_ms / len(clients), clock.server_ms, clock.phase_ms,
    )  # fmt: skip


class _Stopwatch:
    """Wall time of client phases (all devices together) and of the server."""

    def __init__(self) -> None:
        self.phase_ms: dict[str, float] = {}
        self.server_ms = 0.0
        self._phase: str | None = None
        self._start = 0.0

    def client(self, phase: str) -> _Stopwatch:
        self._phase = phase
        return self

    def server(self) -> _Stopwatch:
        self._phase = None
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = (time.perf_counter() - self._start) * 1000
        if self._phase is None:
            self.server_ms += elapsed
        else:
            self.phase_ms[self._phase] = self.phase_ms.get(self._phase, 0.0) + elapsed

    @property
    def client_total_ms(self) -> float:
        return sum(self.phase_ms.values())
