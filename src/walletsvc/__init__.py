"""walletsvc: prepaid-wallet billing for voice and messaging platforms."""

__version__ = "0.1.0"
