"""On-device runtime: int8 inference, streaming windows, local store, numpy head fine-tuning.

Never imports TensorFlow (a test hides it and imports every module here). Import the
submodules directly; nothing is loaded at package import time.
"""
