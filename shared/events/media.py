"""Payload models of the media pipeline (transcoder): probed, renditions, failures."""

from __future__ import annotations
