"""Adapters: the only code that talks to Bybit, Vault, the scheduler and Prometheus."""
