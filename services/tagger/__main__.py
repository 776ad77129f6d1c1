"""Entry point: ``python -m services.tagger`` (consumer + archivists' HTTP API in one process)."""

import logging

import uvicorn

from services.tagger.app import create_app
from shared.settings import get_settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.tagger_port, log_level="info")
