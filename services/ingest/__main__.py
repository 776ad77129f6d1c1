"""Entry point: ``python -m services.ingest``."""

import uvicorn

from services.ingest.app import create_app
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.ingest_port, log_level="info")
