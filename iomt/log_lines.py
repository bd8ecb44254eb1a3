"""The shape of a log line, shared by every long-running command (aggregator, edge device).

`--json`: one JSON object per line with `ts` (ISO 8601, UTC), `level`, `event` and the event's
fields, so a log shipper or `jq` reads it without guessing. Text: one short human line.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

WARNING_EVENTS = frozenset(
    {"bad_message", "bad_model", "model_rejected", "publish_pending", "status_pending"}
)


def json_line(event: str, fields: dict[str, Any], now: float, level: str | None = None) -> str:
    """One structured record: timestamp, level, event, then the fields."""
    stamp = datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds")
    chosen = level or ("warning" if event in WARNING_EVENTS else "info")
    return json.dumps({"ts": stamp, "level": chosen, "event": event, **fields}, default=str)


def device_text_line(record: dict[str, Any]) -> str | None:
    """A device event as one readable line; None for the steps inside a round (see --json)."""
    event, device = record.get("event"), record.get("device")
    if event == "connected":
        return (
            f"{device}: connected to {record['broker']} (model version {record['model_version']})"
        )
    if event == "ack":
        verdict = "accepted" if record.get("accepted") else f"refused ({record.get('reason')})"
        return f"{device}: round {record['round']}: update {verdict}"
    if event == "round_below_installed":  # the aggregator's state was reset or restored
        then = (f"rejoining on version {record['version']}" if record.get("rejoin")
                else "not followed (an older round delivered late)")  # fmt: skip
        return (f"{device}: round {record['round']} announces version {record['version']},"
                f" below the installed {record['installed']}: {then}")  # fmt: skip
    if event == "run_over":  # the aggregator closed its last round before --max-rounds
        return (f"{device}: the aggregator's run is over (round {record['round']} closed, no"
                f" round follows) after {record['rounds_done']} of {record['max_rounds']} rounds:"
                " stopping")  # fmt: skip
    if event in {"round", "update", "settled", "resend", "dp_local", "installed"}:
        return None
    rest = " ".join(f"{k}={v}" for k, v in record.items() if k not in {"device", "event"})
    return f"{device}: {event} {rest}".rstrip()
