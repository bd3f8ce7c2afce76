"""Payment provider adapters. SDK types never leave this package: callers see only the values in base.py."""
