"""Bulk import of a folder with a caption sheet, and the watch folder (tus clients of ingest)."""
