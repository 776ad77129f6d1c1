"""Entry point: ``python -m services.transcoder`` (JetStream worker + /healthz)."""

from services.transcoder.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("transcoder", create_app)
