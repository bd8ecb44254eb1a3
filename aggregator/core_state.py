"""What the parts of the aggregator's round core share: settings, memory, the open round, outbox.

`aggregator.round_intake` (what each message does) and `aggregator.round_core` (opening and
closing rounds) build on this class. Effects are only queued here, in the order they are
decided; the shell (`aggregator.service`) carries them out. Every publish is counted as the
open round's outgoing traffic.
"""

from __future__ import annotations

from aggregator.collecting_round import CollectingRound
from aggregator.core_config import AggregatorConfig, Evaluate, Strategy, Trust
from aggregator.message_gate import MessageGate
from aggregator.partial_sums import Coordination
from aggregator.privacy_ledger import PrivacyLedger
from aggregator.round_events import Effect, Publish, StoreTraffic
from aggregator.round_memory import RoundMemory
from aggregator.secure_aggregation.service_round import SecureAggOptions
from fleet_protocol.chunking import ChunkAssembler
from fleet_protocol.messages import Message
from fleet_protocol.types import Weights
from fleet_protocol.update_encoding import parse_update_encoding
from fleet_protocol.wire import encode_message


class CoreState:
    """The core's settings and memory, the round being collected and the effects queued so far."""

    def __init__(
        self,
        config: AggregatorConfig,
        strategy: Strategy,
        memory: RoundMemory,
        initial_weights: Weights,
        *,
        trust: Trust | None = None,
        evaluate: Evaluate | None = None,
        secure_agg: SecureAggOptions | None = None,
        coordination: Coordination | None = None,
        privacy: PrivacyLedger | None = None,
    ) -> None:
        """With `coordination` it adds workers' or sites' partial sums into each round."""
        self.config, self.strategy, self.memory = config, strategy, memory
        self._coordination = coordination
        self.privacy = privacy  # epsilon per device and version, sampling, budget
        self._initial_weights = initial_weights
        self._trust = trust or Trust()
        self._evaluate, self._secure_agg = evaluate, secure_agg
        self.online: set[str] = set()
        self.finished = False
        self._round: CollectingRound | None = None
        self._carry_restored = False
        self._now = 0.0
        self._out: list[Effect] = []
        self._chunks = ChunkAssembler(
            max_message_bytes=config.max_update_bytes, clock=lambda: self._now
        )
        self._gate = MessageGate(config.rate_limit)
        self._encoding = parse_update_encoding(config.codec)  # announced with every round

    @property
    def open_round_id(self) -> int | None:
        """The round being collected, if any."""
        return None if self._round is None else self._round.round_id

    def _emit(self, *effects: Effect) -> None:
        self._out.extend(effects)

    def _drain(self) -> list[Effect]:
        effects, self._out = self._out, []
        return effects

    def _encode(self, message: Message) -> bytes:
        return encode_message(message, signing_key=self._trust.signing_key)

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._emit(Publish(topic, payload, retain))
        self._count_traffic(self._round.round_id if self._round else 0, bytes_out=len(payload))

    def _publish_phase(self, messages: list[Publish]) -> None:
        """Secure-aggregation messages: their bytes are counted by the coordinator."""
        self._emit(*messages)

    def _count_traffic(self, round_id: int, bytes_in: int = 0, bytes_out: int = 0) -> None:
        if self._round is not None and self._round.round_id == round_id:
            self._round.memory.bytes_in += bytes_in
            self._round.memory.bytes_out += bytes_out
        self._emit(StoreTraffic(round_id, bytes_in, bytes_out))
