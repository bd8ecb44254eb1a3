"""Failures of reading or writing a bundle, each one line so `iomt` can print it as is."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle failed schema, hash or signature checks."""


class BundleWriteError(BundleError):
    """The bundle directory could not be written."""
