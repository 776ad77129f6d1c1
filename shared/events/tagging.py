"""Payload models of tagging, archivists' edits and activities."""

from __future__ import annotations
