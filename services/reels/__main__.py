"""Entry point: ``python -m services.reels`` (the producers' reel API and the renderer)."""

from services.reels.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("reels", create_app)
