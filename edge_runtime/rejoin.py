"""A device above the aggregator's versions rejoins it: the documented policy, pure.

A device reused with a fresh aggregator state file (or a state restored from a backup) has a
head whose version is above every version the aggregator announces. The aggregator's announced
version is the truth: the device says so in one line, installs the announced (lower) head if its
sha256 matches the announcement, forgets the rounds it recorded from that round id on (they were
another state's rounds), and takes part.

Which announcements count: an open round (its deadline not passed: a finished run's last
round, still retained, is not one) that is the first this process sees, or that follows an
earlier below-installed announcement with a higher round id (the aggregator moved on in its
own numbering). A single older round showing up late, after this process saw a round it could
join, is a redelivery and is not followed. Global models below the installed version that
arrive before their announcement (retained messages come in any order) are remembered here,
the most recent few, until it arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fleet_protocol.messages import GlobalModel

MAX_LOWER_MODELS = 8  # retained model/{v} below the installed one, kept until announced


@dataclass
class RejoinPolicy:
    """What this process saw of announcements and lower models."""

    newest_joinable_round: int | None = None  # last round announced at or above installed
    previous_below_round: int | None = None  # last round announced below installed
    lower_models: OrderedDict[tuple[int, str], GlobalModel] = field(default_factory=OrderedDict)

    def should_rejoin(self, round_id: int, version: int, installed: int | None,
                      open_: bool = True) -> bool:  # fmt: skip
        """Record one announcement; True when it is below `installed` and to be followed."""
        if installed is None or version >= installed:
            self.newest_joinable_round, self.previous_below_round = round_id, None
            return False
        moved_on = self.previous_below_round is not None and round_id > self.previous_below_round
        self.previous_below_round = round_id
        return open_ and (self.newest_joinable_round is None or moved_on)

    def remember(self, model: GlobalModel, sha256: str) -> None:
        """Keep a lower model until its announcement arrives (bounded, newest kept)."""
        key = (model.model_version, sha256)
        self.lower_models.pop(key, None)
        self.lower_models[key] = model
        while len(self.lower_models) > MAX_LOWER_MODELS:
            self.lower_models.popitem(last=False)

    def model_for(self, version: int, sha256: str) -> GlobalModel | None:
        """The remembered model of `version` whose weights hash to the announced sha256."""
        return self.lower_models.get((version, sha256))
