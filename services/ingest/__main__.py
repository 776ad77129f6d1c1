"""Entry point: ``python -m services.ingest`` (upload API)."""

from services.ingest.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("ingest", create_app)
