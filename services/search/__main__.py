"""Entry point: ``python -m services.search`` (query API; also the projector unless MAM_SEARCH_RUN_PROJECTOR=false)."""

from services.search.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("search", create_app)
