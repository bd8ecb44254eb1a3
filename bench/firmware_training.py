"""The training figures of `python -m bench firmware`: the head trained on the Cortex-M4.

For the watch LSTM-FCN at `--size mcu` (the bundle the inference bench uses):

- memory: what the firmware reserves for training (ring, weights/velocity/gradient pool,
  shuffle order, per-example buffers: `.bss` of the trainer's objects in the linker map of the
  real firmware image with this backbone), what this head needs of it for 256 embeddings
  (ring entries + head + optimiser state + gradients), and the whole image's RAM with the
  inference arena against the nRF52840's 256 KiB;
- instructions of one training run on 256 stored test-subject embeddings under
  `qemu-system-arm -icount shift=0` (1 and 3 epochs; per epoch = their difference / 2);
- the delta against numpy's `local_update` on the same embeddings, labels, head and seed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

CLOCK_HZ = 64_000_000
NRF52840_RAM = 256 * 1024
EMBEDDINGS = 256
FIT_FIELDS = dict(batch_size=32, learning_rate=0.1, momentum=0.9, proximal_mu=0.01, l2=1e-4)
SEED = 20_261_202
TRAINING_OBJECTS = ("iomt_embedding_ring.c.o", "iomt_head_train.c.o", "iomt_training.c.o")
_MAP_ENTRY = re.compile(r"^ \.bss\.(\S+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$")


def measure_training(
    bundle: Path, windows: np.ndarray, labels: np.ndarray, build: Path
) -> dict[str, Any]:
    """All the training figures of one MCU bundle (test windows normalised, their labels)."""
    from edge_runtime.device_loop import read_bundle_parts

    parts = read_bundle_parts(bundle)
    out = parts.bundle.quantisation("backbone", "output")
    X = parts.backbone().run_batch(windows[:EMBEDDINGS])  # (embeddings, inputs)
    q = np.clip(np.rint(X / out.scale) + out.zero_point, -128, 127).astype(np.int8)
    y = np.asarray(labels[:EMBEDDINGS], dtype=np.int64)
    runs = {epochs: _train(parts.head, q, y, (out.scale, out.zero_point), epochs, build)
            for epochs in (1, 3)}  # fmt: skip
    one, three = runs[1]["instructions"], runs[3]["instructions"]
    params = sum(int(w.size) for w in parts.head.weights)
    memory = _memory(bundle, build, params, q.shape[1])
    return {
        "head": {"shapes": [list(w.shape) for w in parts.head.weights], "params": params},
        "embeddings": len(y),
        "fit": FIT_FIELDS,
        "memory": memory,
        "instructions": {"one_epoch_run": one, "three_epoch_run": three,
                         "per_epoch": (three - one) // 2},
        "ms_per_epoch_at_64mhz": round((three - one) / 2 / CLOCK_HZ * 1000, 2),
        "vs_numpy_local_update": runs[3]["parity"],
    }  # fmt: skip


def _train(head: Any, q: np.ndarray, y: np.ndarray, quant: tuple[float, int], epochs: int,
           build: Path) -> dict[str, Any]:  # fmt: skip
    """One QEMU training run and its delta against numpy's."""
    from edge_runtime.local_update import local_update
    from firmware_bridge.protocol.model_messages import HeadSet
    from firmware_bridge.train_harness import TrainRequest, build_qemu_bench, run_qemu_bench
    from fleet_protocol.messages import FitConfig
    from fleet_protocol.portable_rng import PortableRng
    from fleet_protocol.tensor_codecs import encode_tensor

    fit = FitConfig(local_epochs=epochs, **FIT_FIELDS)  # type: ignore[arg-type]
    request = TrainRequest(epochs, fit.batch_size, fit.learning_rate, fit.momentum, fit.l2,
                           fit.proximal_mu, SEED, HeadSet(1, tuple(head.weights)).to_payload(),
                           q, y, quant[0], quant[1])  # fmt: skip
    build.mkdir(parents=True, exist_ok=True)
    reply = run_qemu_bench(build_qemu_bench(build / "train_bench.elf"), request)
    X = (np.float32(quant[0]) * (q.astype(np.float32) - quant[1])).astype(np.float32)
    reference = local_update(head, fit, X, y, SEED).delta
    errors = [float(np.linalg.norm(d - r.reshape(-1)) / np.linalg.norm(r))
              for d, r in zip(reply.delta, reference, strict=True)]  # fmt: skip
    rng = PortableRng(SEED)
    same = sum(int(np.sum(np.frombuffer(rec.values, np.int8) == np.frombuffer(
        encode_tensor(r, "int8", rng).values, np.int8)))
        for rec, r in zip(reply.records, reference, strict=True))  # fmt: skip
    parity = {
        "max_relative_error": max(errors),
        "int8_identical": same / sum(r.size for r in reference),
    }
    return {"instructions": int(reply.instructions or 0), "parity": parity}


def _memory(bundle: Path, build: Path, params: int, inputs: int) -> dict[str, Any]:
    """Reserved and needed training RAM, and the whole firmware image's RAM."""
    import json

    from convert.firmware_plan import generate_plan
    from firmware_bridge.firmware_build import BuildRequest, build_image, config_from_manifest

    manifest = json.loads((bundle / "manifest.json").read_text())
    request = BuildRequest(config_from_manifest(manifest), build / "firmware",
                           backbone=bundle / "backbone.int8.tflite")  # fmt: skip
    image = build_image(request)
    reserved = _bss_by_symbol(build / "firmware" / "iomt_firmware.map")
    head = 4 * params
    needed = {"ring": EMBEDDINGS * (inputs + 1), "shuffle_order": 2 * EMBEDDINGS, "head": head,
              "optimiser_state": head, "gradients": head}  # fmt: skip
    return {
        "needed_for_256_embeddings": {**needed, "total": sum(needed.values())},
        "reserved_by_firmware": {**reserved, "total": sum(reserved.values())},
        "arena_bytes": generate_plan((bundle / "backbone.int8.tflite").read_bytes()).arena_bytes,
        "firmware_ram_bytes": image.ram_bytes,
        "nrf52840_ram_bytes": NRF52840_RAM,
        "fits_nrf52840": image.ram_bytes <= NRF52840_RAM,
    }


def _bss_by_symbol(map_file: Path) -> dict[str, int]:
    """`.bss` bytes of each static in the trainer's objects, from the linker map."""
    sizes: dict[str, int] = {}
    for line in map_file.read_text().splitlines():
        found = _MAP_ENTRY.match(line)
        if found and found.group(3).endswith(TRAINING_OBJECTS):
            sizes[found.group(1)] = int(found.group(2), 16)
    return sizes


def report_rows(training: dict[str, Any]) -> str:
    """The docs/benchmarks.md lines of the training figures."""
    memory, parity = training["memory"], training["vs_numpy_local_update"]
    needed = memory["needed_for_256_embeddings"]["total"]
    reserved = memory["reserved_by_firmware"]["total"]
    return (
        f"Head training on the Cortex-M4 ({training['head']['params']} parameters, "
        f"{training['embeddings']} stored embeddings): {training['instructions']['per_epoch']:,} "
        f"instructions per epoch ({training['ms_per_epoch_at_64mhz']} ms at 64 MHz); training "
        f"needs {needed:,} B of the {reserved:,} B the firmware reserves; the whole image takes "
        f"{memory['firmware_ram_bytes']:,} B of {memory['nrf52840_ram_bytes']:,} B RAM with the "
        f"arena; delta vs numpy {parity['max_relative_error']:.1e} relative, int8 values "
        f"identical on {parity['int8_identical']:.4f}.\n"
    )
