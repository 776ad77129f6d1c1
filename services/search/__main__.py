"""Entry point: ``python -m services.search`` (projector + query API in one process)."""

import uvicorn

from services.search.app import create_app
from shared.settings import get_settings

if __name__ == "__main__":
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.search_port, log_level="info")
