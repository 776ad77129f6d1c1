"""Entry point: ``python -m services.catalogue`` (the archivists' HTTP API)."""

from shared.service import run_service

from services.catalogue.app import create_app

if __name__ == "__main__":
    run_service("catalogue", create_app)
