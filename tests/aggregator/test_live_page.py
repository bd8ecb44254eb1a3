"""The metrics endpoint and the live fleet page, served from a real state file over HTTP.

The page is loaded in real headless Chromium and its screenshot checked: the accuracy line
(blue) and the byte bars (orange) are drawn, and the page is not blank.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.core_config import AggregatorConfig
from aggregator.fleet_snapshot import FleetSnapshot, read_fleet_snapshot
from aggregator.live_page import LivePage, render_page
from aggregator.round_core import AggregatorCore
from aggregator.round_events import Effect, MessageArrived
from aggregator.round_memory import read_snapshot
from aggregator.service import apply_to_store
from aggregator.state_store import StateStore
from aggregator.strategies import make_strategy
from fleet_protocol.messages import DeviceStatus, ModelUpdate, RoundAnnouncement
from fleet_protocol.publish import Publish
from fleet_protocol.topics import round_topic, status_topic, update_topic
from fleet_protocol.wire import decode_message, encode_message

FLEET = "page"
HEAD = [np.zeros((2, 2), np.float32), np.zeros(2, np.float32)]
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)


def _announcement(effects: list[Effect]) -> RoundAnnouncement:
    rounds = [e for e in effects if isinstance(e, Publish) and e.topic == round_topic(FLEET)]
    message = decode_message(rounds[-1].payload)
    assert isinstance(message, RoundAnnouncement)
    return message


def _apply(store: StateStore, effects: list[Effect], now: float) -> list[Effect]:
    for effect in effects:
        apply_to_store(store, effect, now)
    return effects


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Three rounds by two devices (accuracy rising), one refused update, pi-b gone offline."""
    path = tmp_path / "agg.sqlite"
    t0 = time.time() - 600  # the page shows "last seen" against the real clock
    with StateStore(path) as store:
        config = AggregatorConfig(FLEET, 3, 2, 1000.0, "float32")
        core = AggregatorCore(config, make_strategy("fedavg"), read_snapshot(store), HEAD,
                              evaluate=lambda w: 0.5 + float(np.mean(w[0])))  # fmt: skip
        announcement = _announcement(_apply(store, core.start(t0), t0))
        for device in ("pi-a", "pi-b"):
            status = encode_message(DeviceStatus(FLEET, device, True, 0, "", 8 << 30, 47.0))
            arrived = MessageArrived(status_topic(FLEET, device), status)
            _apply(store, core.handle(arrived, t0 + 1), t0 + 1)
        junk = MessageArrived(update_topic(FLEET, "pi-b"), b"junk")
        for round_id in range(1, 4):
            if round_id == 2:
                _apply(store, core.handle(junk, t0 + 90), t0 + 90)
            for device in ("pi-a", "pi-b"):
                delta = [np.full(w.shape, 0.1, np.float32) for w in HEAD]
                update = ModelUpdate(FLEET, round_id, announcement.model_version, device,
                                     round_id, 10, delta)  # fmt: skip
                message = MessageArrived(update_topic(FLEET, device), encode_message(update))
                now = t0 + 100.0 * round_id
                effects = _apply(store, core.handle(message, now), now)
            announcement = _announcement(effects) if round_id < 3 else announcement
        offline = encode_message(DeviceStatus(FLEET, "pi-b", False, 3))
        gone = MessageArrived(status_topic(FLEET, "pi-b"), offline)
        _apply(store, core.handle(gone, t0 + 420), t0 + 420)
    return path


def test_metrics_endpoint_serves_rounds_rejections_bytes_accuracy_and_devices(state: Path) -> None:
    with LivePage(state, 0) as page:
        text = urllib.request.urlopen(f"{page.url}/metrics", timeout=10).read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families for s in family.samples}  # fmt: skip
    assert samples[("iomt_rounds_total", (("status", "aggregated"),))] == 3
    assert samples[("iomt_rejected_updates_total", (("reason", "malformed"),))] == 1
    assert samples[("iomt_devices_online", ())] == 1
    assert samples[("iomt_last_round_participants", ())] == 2
    assert samples[("iomt_holdout_accuracy", ())] == pytest.approx(0.8, abs=0.01)
    assert samples[("iomt_model_version", ())] == 3
    assert samples[("iomt_round_bytes_total", (("direction", "in"),))] > 0


def test_page_lists_devices_and_charts_every_round(state: Path) -> None:
    page = render_page(read_fleet_snapshot(state), now=10.0)
    assert "pi-a" in page and "pi-b" in page and "malformed" in page
    assert page.count("<circle") == 4 and page.count("<rect") == 3  # accuracy from round 0
    assert "Holdout accuracy per round" in page and "Bytes per round" in page
    assert ">0</text>" in page.split("Bytes per round")[0]  # round 0 on the accuracy axis


def test_round_0_is_the_pretrained_heads_accuracy(state: Path) -> None:
    snapshot = read_fleet_snapshot(state)
    assert snapshot.initial_accuracy == pytest.approx(0.5)  # the evaluator on the zero head
    assert snapshot.rounds[0].accuracy == pytest.approx(0.6, abs=0.01)


def test_an_empty_state_renders_a_page_without_charts_data() -> None:
    page = render_page(FleetSnapshot(), now=0.0)
    assert "no devices yet" in page and "<circle" not in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed (make chromium installs it)")
    return found


def test_page_in_headless_chromium_draws_the_charts(state: Path, tmp_path: Path) -> None:
    # Prepare
    shot = tmp_path / "page.png"
    profile = tmp_path / "chromium-profile"

    # Execute
    with LivePage(state, 0) as page:
        subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1000,720",
             f"{page.url}/"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    # Assert
    import matplotlib.image

    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)  # (H, W, RGB)
    assert pixels.shape[:2] == (720, 1000)
    assert np.mean(np.any(pixels < 200, axis=-1)) > 0.01  # text, axes and tables drawn
    for colour in (BLUE, ORANGE):
        near = np.all(np.abs(pixels - np.array(colour)) <= 12, axis=-1)
        assert near.sum() > 50, f"no pixels of {colour}"
    if (docs := Path(__file__).parents[2] / "docs").is_dir() and "IOMT_WRITE_DOCS" in __import__(
        "os"
    ).environ:
        shutil.copy(shot, docs / "live-page.png")
