"""IoMT Edge FL: the `iomt` command line and the fleet simulation wiring the packages."""

__version__ = "0.1.0"
