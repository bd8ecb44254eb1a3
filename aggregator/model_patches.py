"""Which patch, if any, to publish beside a new global head (`fleet_protocol.model_patch`).

Pure: given the new version, the one before it and the encoded full head, the signed-ready
`ModelPatch` when it is smaller than the full head, else None (the full head is always
published; devices without the base fetch it).
"""

from __future__ import annotations

from collections.abc import Callable

from aggregator.round_memory import StoredVersion
from fleet_protocol.messages import GlobalModel, Message, ModelPatch
from fleet_protocol.model_patch import make_patch


def smaller_patch(
    new: GlobalModel,
    base: StoredVersion | None,
    new_sha256: str,
    full_bytes: int,
    encode: Callable[[Message], bytes],
) -> bytes | None:
    """The encoded patch of `new` against `base` (its parent) if smaller than `full_bytes`;
    it carries the new head's privacy stamp."""
    if base is None or new.parent_version != base.version or new.model_version == base.version:
        return None
    patch = make_patch(base.weights, new.weights)
    if patch is None:
        return None
    message = ModelPatch(new.fleet, new.model_version, base.version, base.sha256, new_sha256,
                         patch, new.dp_epsilon, new.dp_delta)  # fmt: skip
    encoded = encode(message)
    return encoded if len(encoded) < full_bytes else None
