"""Subject-id lists on the command line: `8,9,10`, or ranges such as `1-15,21-60`.

A training population of sixty simulated people is a long list to type; ranges keep the command
that was run short enough to read and to copy into the docs.
"""

from __future__ import annotations

import argparse


def parse_subject_ids(text: str) -> list[int]:
    """Ids in the order given; `a-b` is a..b inclusive. Raises `ValueError` with one line."""
    ids: list[int] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = (int(low), int(high)) if dash else (int(part), int(part))
        except ValueError:
            raise ValueError(
                f"expected subject ids such as 8,9,10 or 1-15,21-60, got {text!r}"
            ) from None
        if first > last:
            raise ValueError(f"subject range {part!r} runs backwards")
        ids.extend(range(first, last + 1))
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"subjects listed twice in {text!r}: {repeated}")
    return ids


def subject_ids_argument(text: str) -> list[int]:
    """`parse_subject_ids` as an argparse `type`: a bad list is argparse's one-line usage error."""
    try:
        return parse_subject_ids(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
