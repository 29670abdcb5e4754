"""Adapters: the only modules that talk to the outside world (Bybit, Vault, the scheduler, metrics).

Each translates its library's errors into `rotator.errors` at the boundary.
"""
