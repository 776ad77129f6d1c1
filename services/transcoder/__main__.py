"""Entry point: ``python -m services.transcoder`` (JetStream worker + /healthz)."""

import logging

import uvicorn

from services.transcoder.app import create_app
from shared.settings import get_settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.transcoder_port, log_level="info")
