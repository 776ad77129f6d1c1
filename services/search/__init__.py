"""search — projects asset events into Elasticsearch and serves the archivists' query API."""
