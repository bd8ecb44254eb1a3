"""IoMT Edge FL: the `iomt` command line and the fleet simulation that wires the packages together."""

__version__ = "0.1.0"
