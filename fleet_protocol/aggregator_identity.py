"""The aggregator's Ed25519 identity as devices see it: only it may sign rounds, models, acks.

A device is provisioned with the aggregator's public key (`iomt edge --aggregator-key`) and
refuses any round announcement, global model or ack that this key did not sign, so neither the
broker operator nor a device that slipped past the ACL can push a model to the fleet.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_protocol.signing import public_key_from_bytes
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.wire import VerifyKey


def aggregator_verifier(public_key: bytes | Ed25519PublicKey) -> VerifyKey:
    """A `verify_key` for `decode_message` that trusts only the aggregator's key."""
    key = public_key_from_bytes(public_key) if isinstance(public_key, bytes) else public_key

    def verify_key(signer: str) -> Ed25519PublicKey | None:
        return key if signer == AGGREGATOR_ID else None

    return verify_key
