"""Safe media inspection shared by ingest and the media workers."""
