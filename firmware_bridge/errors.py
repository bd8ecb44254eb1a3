"""Errors of the serial bridge: one hierarchy, one-line messages."""


class BridgeError(Exception):
    """Base class of every error raised by `firmware_bridge`."""


class FrameError(BridgeError):
    """Bytes that are not a valid frame (bad COBS, CRC, length or version)."""


class PayloadError(FrameError):
    """A valid frame whose payload does not match its message type's layout."""


class DeviceTimeout(BridgeError):  # noqa: N818 (name fixed by the design)
    """The device did not answer a request after every retransmission."""


class DeviceError(BridgeError):
    """The device answered a request with an ERROR message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"device error {code}: {message}")
        self.code = code
        self.message = message


class ConnectionLostError(BridgeError):
    """The serial port went away (unplugged, closed, read error)."""


class PortError(BridgeError):
    """The serial port could not be opened."""


class ModelUploadError(BridgeError):
    """A model upload was refused or could not complete."""
