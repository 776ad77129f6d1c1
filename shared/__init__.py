"""Contracts and small shared mechanisms of the HĐND media archive.

Nothing here connects to anything at import time; services build adapters in
their own wiring function.
"""
