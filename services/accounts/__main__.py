"""Entry point: ``python -m services.accounts`` (sign-in, users and API keys)."""

from services.accounts.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("accounts", create_app)
