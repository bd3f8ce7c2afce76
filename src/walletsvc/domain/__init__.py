"""The pure domain: money, ledger rules, authorization rules. Standard library only."""
