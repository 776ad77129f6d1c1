"""Reels: summary producers assemble and render review reels (issue 13)."""
