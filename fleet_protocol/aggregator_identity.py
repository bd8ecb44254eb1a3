"""The aggregator's Ed25519 identity as devices see it: only it may sign rounds, models, acks.

A device is provisioned with the aggregator's public key (`iomt edge --aggregator-key`) and
refuses any round announcement, global model or ack that this key did not sign, so neither the
broker operator nor a device that slipped past the ACL can push a model to the fleet.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_protocol.errors import SignatureError
from fleet_protocol.messages import Message
from fleet_protocol.signing import public_key_from_bytes
from fleet_protocol.topics import AGGREGATOR_ID
from fleet_protocol.wire import VerifyKey, decode_message


def aggregator_verifier(public_key: bytes | Ed25519PublicKey) -> VerifyKey:
    """A `verify_key` for `decode_message` that trusts only the aggregator's key."""
    key = public_key_from_bytes(public_key) if isinstance(public_key, bytes) else public_key

    def verify_key(signer: str) -> Ed25519PublicKey | None:
        return key if signer == AGGREGATOR_ID else None

    return verify_key


def decode_signed_by_any(
    payload: bytes, expected_type: type, verify_keys: tuple[VerifyKey | None, ...]
) -> Message:
    """Decode a message that any one of several keys may have signed: workers sharing one
    broker each sign their acks with a key of their own, all as signer `aggregator`, so the
    device tries each key it was given (`iomt edge --site-key`, repeated)."""
    *others, last = verify_keys
    for verify_key in others:
        try:
            return decode_message(payload, expected_type=expected_type, verify_key=verify_key)
        except SignatureError:
            continue  # perhaps the next key's
    return decode_message(payload, expected_type=expected_type, verify_key=last)
