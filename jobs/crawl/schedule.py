"""Schedule slots: one deterministic submission id per slot, so a retried slot (a
CronJob that fires twice, a pod restarted) never indexes twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

PREFIX = "lineage-index"
_EVERY = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_every(text: str) -> timedelta:
    """'30m', '6h', '1d' -> a timedelta."""
    match = _EVERY.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"schedule period {text!r} is not like 30m, 6h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def slot_start(when: datetime, every: timedelta) -> datetime:
    """The start of the slot holding `when` (slots are aligned on the Unix epoch, UTC)."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    slots = (when - epoch) // every
    return epoch + slots * every


def submission_id(when: datetime, every: timedelta) -> str:
    """`lineage-index-20250102T0600Z`: valid as a Ray submission id and a k8s name
    once lower-cased."""
    return f"{PREFIX}-{slot_start(when, every):%Y%m%dT%H%M}Z"


def parse_slot(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
