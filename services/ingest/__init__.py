"""ingest — accepts uploads, validates content by probing, stores originals, appends ``asset.ingested``."""
