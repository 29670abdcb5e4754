"""bybit-key-rotator: keeps Bybit API keys from ever expiring."""

__version__ = "0.1.0"
