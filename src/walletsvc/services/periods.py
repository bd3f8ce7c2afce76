"""Period close: at each subscription's period end, once, the quota resets and the plan fee is charged.
(Being built: issue 9.)"""

from __future__ import annotations

from walletsvc.db.engine import Database


async def close_due_periods(db: Database) -> int:
    """Close every subscription period that has ended, in order, each once; answer how many closed."""
    return 0
