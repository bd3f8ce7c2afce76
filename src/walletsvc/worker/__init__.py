"""`walletsvc worker`: the background jobs and schedules, on pgqueuer."""
