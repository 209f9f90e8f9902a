"""The hash-chained audit log: append inside each write, verify on demand.

Each row holds ``hash = sha256(seq | at | actor | action | entity | entity_id |
details | prev_hash)`` with ``prev_hash`` the previous row's hash, so editing
a row breaks its own hash, deleting one leaves a gap in ``seq`` and a broken
link, and reordering breaks the links. The newest (seq, hash) is also kept in
the settings table: truncating the tail then shows as a mismatch with it.

Appends are serialised: SQLite write transactions already hold the database
write lock (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory
lock is taken just before reading the chain's head, at the end of the unit
of work, so it is held only for the commit.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.schema import AuditEntry, Setting, as_utc, utcnow

GENESIS_HASH = "0" * 64
HEAD_SETTING = "audit.head"
# An arbitrary constant naming "the audit chain" among PostgreSQL advisory locks.
AUDIT_LOCK_KEY = 0x58524159


def canonical_json(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _timestamp(value: dt.datetime) -> str:
    utc = as_utc(value)
    assert utc is not None
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(seq: int, at: dt.datetime, actor: str, action: str, entity: str, entity_id: str,
               details: str, prev_hash: str) -> str:
    payload = "\x1f".join([str(seq), _timestamp(at), actor, action, entity, entity_id, details, prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, entity: str, entity_id: object,
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add one audit row to the chain inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
    last = session.execute(select(AuditEntry.seq, AuditEntry.hash)
                           .order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    # Microsecond precision survives both engines, so the hash recomputes exactly.
    at = utcnow()
    text = canonical_json(details or {})
    row = AuditEntry(seq=seq, at=at, actor=actor, action=action, entity=entity, entity_id=str(entity_id),
                     details=text, prev_hash=prev_hash,
                     hash=entry_hash(seq, at, actor, action, entity, str(entity_id), text, prev_hash))
    session.add(row)
    head = session.get(Setting, HEAD_SETTING)
    if head is None:
        session.add(Setting(key=HEAD_SETTING, value={"seq": seq, "hash": row.hash}))
    else:
        head.value = {"seq": seq, "hash": row.hash}
    session.flush()
    return row


@dataclass(frozen=True)
class AuditReport:
    checked: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, batch_size: int = 5000) -> AuditReport:
    """Walk the chain in order and name every row that was edited, deleted or reordered."""
    problems: list[str] = []
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    stream = session.execute(select(AuditEntry).order_by(AuditEntry.seq)
                             .execution_options(yield_per=batch_size)).scalars()
    for row in stream:
        checked += 1
        if row.seq != expected_seq:
            missing = (f"seq {expected_seq}" if row.seq == expected_seq + 1
                       else f"seq {expected_seq}..{row.seq - 1}")
            problems.append(f"audit rows {missing} are missing (deleted); the chain resumes at seq {row.seq}")
        elif row.prev_hash != prev_hash:
            problems.append(f"audit row seq {row.seq} (id {row.id}) does not link to the row before it "
                            "(prev_hash mismatch: a row was replaced or reordered)")
        recomputed = entry_hash(row.seq, row.at, row.actor, row.action, row.entity, row.entity_id,
                                row.details, row.prev_hash)
        if recomputed != row.hash:
            problems.append(f"audit row seq {row.seq} (id {row.id}, {row.action} {row.entity} "
                            f"{row.entity_id} by {row.actor}) was altered: its content does not match its hash")
        expected_seq, prev_hash = row.seq + 1, row.hash
    head = session.get(Setting, HEAD_SETTING)
    if head is not None:
        head_seq, head_hash = int(head.value.get("seq", 0)), str(head.value.get("hash", ""))
        end = expected_seq - 1
        if head_seq > end:
            problems.append(f"the chain ends at seq {end} but the recorded head is seq {head_seq}: "
                            f"rows seq {expected_seq}..{head_seq} are missing (deleted from the end)")
        elif head_seq < end:
            problems.append(f"audit rows seq {head_seq + 1}..{end} were written outside the store "
                            f"(the recorded head is seq {head_seq})")
        elif head_hash != prev_hash:
            problems.append(f"the last audit row (seq {head_seq}) does not match the recorded head hash")
    elif checked:
        problems.append("the audit head record is missing from settings")
    return AuditReport(checked=checked, problems=problems)
