from services.web.app import create_app
from shared.service import run_service

if __name__ == "__main__":
    run_service("web", create_app)
