"""Verify a chain of audit rows against signed checkpoints, every break reported, not only the first.

Used on the database (with the HMAC keys) and on an exported JSON Lines file (without them: see README →
Security for what that proves). Rows are plain dicts in id order, as `audit_event_row` exports them.
"""
import hmac
from dataclasses import dataclass, field
from typing import Iterable

from .chain import GENESIS_HASH, chain_mac, content_hash
from .checkpoints import checkpoint_problem


@dataclass(frozen=True)
class ChainBreak:
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        return f"audit event {self.event_id}: {self.reason}" if self.event_id is not None else self.reason


@dataclass
class ChainReport:
    checked: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    checkpoints: int = 0  # checkpoints whose signature verified
    latest_checkpoint: dict | None = None
    unsigned_tail: int = 0  # events after the latest checkpoint's head, linked but not yet signed
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _describe(checkpoint: dict) -> str:
    return f"the checkpoint of {checkpoint['size']} events signed at {checkpoint['signed_at']}"


def _content_problem(row: dict) -> str | None:
    try:
        recomputed = content_hash(row["prev_hash"], row)
    except (ValueError, TypeError) as exc:
        return f"its fields can't be read ({exc})"
    return None if recomputed == row["hash"] else "its content does not match its hash: the row was altered"


def verify_chain(rows: Iterable[dict], *, checkpoints: list[dict], public_keys: dict,
                 hmac_keys: dict[str, bytes] | None) -> ChainReport:
    report = ChainReport()
    anchors = []
    for checkpoint in checkpoints:
        problem = checkpoint_problem(checkpoint, public_keys)
        if problem:
            report.breaks.append(ChainBreak(None, _sentence(f"{_describe(checkpoint)} {problem}")))
        else:
            anchors.append(checkpoint)
    anchors.sort(key=lambda c: c["size"])
    report.checkpoints = len(anchors)
    heads = {c["head_hash"] for c in anchors}
    position_of: dict[str, int] = {}

    expected_prev, previous_id = GENESIS_HASH, None
    for row in rows:
        report.checked += 1
        if row["prev_hash"] != expected_prev:
            after = f"event {previous_id}" if previous_id is not None else "the start of the log"
            report.breaks.append(ChainBreak(row["id"], f"its prev_hash does not match the hash of {after}: "
                                                       "events were deleted, inserted or reordered here"))
        problem = _content_problem(row)
        if problem:
            report.breaks.append(ChainBreak(row["id"], problem))
        elif hmac_keys is not None:
            key = hmac_keys.get(row["key_id"])
            if key is None:
                report.breaks.append(ChainBreak(row["id"], f"its MAC key {row['key_id']!r} is not in AUDIT_HMAC_KEYS"))
            elif not hmac.compare_digest(chain_mac(key, row["hash"]), row["mac"]):
                report.breaks.append(ChainBreak(row["id"], "its MAC does not verify: the row was written or "
                                                           "re-hashed without the audit key (forged or re-chained)"))
        if row["hash"] in heads:
            position_of[row["hash"]] = report.checked
        expected_prev, previous_id = row["hash"], row["id"]

    mismatched = []
    for checkpoint in anchors:
        position = position_of.get(checkpoint["head_hash"])
        if position == checkpoint["size"]:
            continue
        if report.checked == 0:
            reason = f"the log is empty but {_describe(checkpoint)} covers them: the table was emptied"
        elif position is None and report.checked < checkpoint["size"]:
            reason = (f"{_describe(checkpoint)} ends at event {checkpoint['head_event_id']}, which is missing, and "
                      f"the chain has only {report.checked} events: events were deleted from the end")
        elif position is None:
            reason = (f"the head of {_describe(checkpoint)} (event {checkpoint['head_event_id']}) is not in the "
                      "chain: events up to it were altered or removed")
        else:
            delta = checkpoint["size"] - position
            reason = (f"{_describe(checkpoint)} ends at event {checkpoint['head_event_id']}, but the chain reaches it "
                      f"after {position} events: {abs(delta)} events before it were "
                      f"{'deleted' if delta > 0 else 'inserted'}")
        mismatched.append(reason)
    if mismatched:
        # Later checkpoints repeat an earlier break; name the first and the latest, count the rest.
        report.breaks.append(ChainBreak(None, _sentence(mismatched[0])))
        if len(mismatched) > 1:
            between = (f" ({len(mismatched) - 2} checkpoints between them do not match either)"
                       if len(mismatched) > 2 else "")
            report.breaks.append(ChainBreak(None, _sentence(mismatched[-1]) + between))
    if anchors:
        report.latest_checkpoint = anchors[-1]
        reached = position_of.get(anchors[-1]["head_hash"])
        report.unsigned_tail = report.checked - reached if reached else 0
    else:
        report.unsigned_tail = report.checked
    return report
