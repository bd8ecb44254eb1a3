"""The signed partial sum: round trips, signatures, and one precise error per fault."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet_protocol.errors import (
    MalformedMessageError,
    MessageTypeError,
    NonFiniteValueError,
    ShapeMismatchError,
    SignatureError,
    UnknownSignerError,
)
from fleet_protocol.messages import UpdateAck
from fleet_protocol.partial_sum import PartialSum, decode_partial_sum, encode_partial_sum
from fleet_protocol.topics import parse_topic, partial_topic
from fleet_protocol.wire import encode_message

SHAPES = ((3, 2), (2,))
KEY = Ed25519PrivateKey.generate()


def gen_partial(**changes: object) -> PartialSum:
    """A partial sum of two devices over an 8-value model."""
    partial = PartialSum("ward-7", 4, 3, "worker-1", 2, np.arange(8, dtype=np.float64) / 3,
                         50, ("dev-1", "dev-2"), SHAPES)  # fmt: skip
    return replace(partial, **changes)  # type: ignore[arg-type]


def trusted(signer: str) -> object:
    return KEY.public_key() if signer.startswith("worker") else None


def test_signed_partial_sum_round_trips_exactly() -> None:
    # Prepare
    partial = gen_partial()
    # Execute
    back = decode_partial_sum(encode_partial_sum(partial, KEY), verify_key=trusted,  # type: ignore[arg-type]
                              expected_shapes=list(SHAPES))  # fmt: skip
    # Assert
    assert (back.fleet, back.round_id, back.model_version, back.signer_id) == (
        "ward-7",
        4,
        3,
        "worker-1",
    )
    assert (back.sequence, back.total_weight, back.participants) == (2, 50, ("dev-1", "dev-2"))
    assert back.shapes == SHAPES and back.count == 2
    np.testing.assert_array_equal(back.weighted_sum, partial.weighted_sum)  # float64, bit-exact


def test_tampered_sum_fails_its_signature() -> None:
    # Prepare: flip one bit of the float64 sum inside the signed body
    partial = gen_partial()
    envelope = msgpack.unpackb(encode_partial_sum(partial, KEY))
    body = bytearray(envelope["body"])
    body[body.index(partial.weighted_sum.tobytes()) + 9] ^= 0x01
    envelope["body"] = bytes(body)
    # Execute / Assert
    with pytest.raises(SignatureError):
        decode_partial_sum(msgpack.packb(envelope), verify_key=trusted)  # type: ignore[arg-type]


def test_unsigned_or_unknown_signer_is_refused_when_keys_are_required() -> None:
    with pytest.raises(SignatureError):
        decode_partial_sum(encode_partial_sum(gen_partial(), None), verify_key=trusted)  # type: ignore[arg-type]
    stranger = encode_partial_sum(gen_partial(signer_id="site-9"), KEY)
    with pytest.raises(UnknownSignerError):
        decode_partial_sum(stranger, verify_key=trusted)  # type: ignore[arg-type]


def test_a_signer_cannot_send_another_signers_sum() -> None:
    # Prepare: worker-2 signs a body claiming to be worker-1's
    partial = gen_partial()
    body = msgpack.unpackb(encode_partial_sum(partial, KEY))["body"]
    from fleet_protocol.wire import seal_envelope

    forged = seal_envelope(body, "worker-2", KEY)
    # Execute / Assert
    with pytest.raises(SignatureError, match="signed by 'worker-2'"):
        decode_partial_sum(forged, verify_key=trusted)  # type: ignore[arg-type]


def test_shapes_other_than_the_models_are_refused() -> None:
    data = encode_partial_sum(gen_partial(), KEY)
    with pytest.raises(ShapeMismatchError):
        decode_partial_sum(data, verify_key=None, expected_shapes=[(4, 2)])


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"weighted_sum": np.array([np.nan] + [0.0] * 7)}, NonFiniteValueError),
        ({"weighted_sum": np.zeros(7)}, ShapeMismatchError),
        ({"participants": ("dev-2", "dev-1")}, MalformedMessageError),
        ({"participants": ("dev-1", "dev-1")}, MalformedMessageError),
        ({"total_weight": 0}, MalformedMessageError),
        ({"participants": ("aggregator",)}, MalformedMessageError),
        ({"participants": ("aggregator", "dev-1")}, MalformedMessageError),
        ({"participants": ("dev 2", "dev-1")}, MalformedMessageError),  # a known id, a bad one
        ({"participants": ("dev-1", "dev/2")}, MalformedMessageError),
    ],
)
def test_a_sender_refuses_to_send_what_a_receiver_refuses(
    changes: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        encode_partial_sum(gen_partial(**changes), KEY)


@pytest.mark.parametrize("participants", [[1, 2], ["dev-1", None], ["dev-1", b"dev-2"]])
def test_participants_that_are_not_id_strings_are_refused(participants: list[object]) -> None:
    envelope = msgpack.unpackb(encode_partial_sum(gen_partial(), None), raw=False)
    body = msgpack.unpackb(envelope["body"], raw=False)
    body["fields"]["participants"] = participants
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    with pytest.raises(MalformedMessageError):
        decode_partial_sum(msgpack.packb(envelope, use_bin_type=True), verify_key=None)


def test_a_model_message_is_not_a_partial_sum() -> None:
    ack = encode_message(UpdateAck("ward-7", 4, "dev-1", 1, True))
    with pytest.raises(MessageTypeError):
        decode_partial_sum(ack, verify_key=None)


def test_an_empty_partial_sum_is_valid() -> None:
    empty = gen_partial(weighted_sum=np.zeros(8), total_weight=0, participants=())
    assert decode_partial_sum(encode_partial_sum(empty, KEY), verify_key=None).count == 0


def test_partial_topic_parses_back_to_its_signer() -> None:
    topic = partial_topic("ward-7", "worker-1")
    assert topic == "iomt/v1/ward-7/partial/worker-1"
    assert parse_topic(topic) == ("ward-7", "partial", "worker-1")


@pytest.mark.parametrize("tamper", [False, True])
def test_libsodium_and_openssl_agree_on_every_signature(tamper: bool) -> None:
    from cryptography.exceptions import InvalidSignature

    from fleet_protocol.signing import verify_with_openssl, verify_with_sodium

    message = b"iomt-fl\x00" + bytes(range(200))
    signature = bytearray(KEY.sign(message))
    if tamper:
        signature[10] ^= 0x04
    verdicts = []
    for verify in (verify_with_openssl, verify_with_sodium):
        try:
            verify(KEY.public_key(), bytes(signature), message)
            verdicts.append(True)
        except InvalidSignature:
            verdicts.append(False)
    assert verdicts == [not tamper, not tamper]


def test_libsodium_checks_each_key_object_against_its_own_bytes() -> None:
    """The raw bytes remembered per key object never stand in for another key's."""
    from cryptography.exceptions import InvalidSignature

    from fleet_protocol.signing import verify_with_sodium

    message = b"iomt-fl\x00" + bytes(range(64))
    keys = [Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in range(1, 4)]
    for _ in range(2):  # the second pass finds every key remembered
        for signer in keys:
            signature = signer.sign(message)
            for other in keys:
                if other is signer:
                    verify_with_sodium(other.public_key(), signature, message)
                else:
                    with pytest.raises(InvalidSignature):
                        verify_with_sodium(other.public_key(), signature, message)
