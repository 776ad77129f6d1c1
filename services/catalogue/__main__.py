"""Entry point: ``python -m services.catalogue`` (the archivists' HTTP API)."""

from services.catalogue.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("catalogue", create_app)
