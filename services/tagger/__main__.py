"""Entry point: ``python -m services.tagger`` (consumer + archivists' HTTP API in one process)."""

from services.tagger.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("tagger", create_app)
