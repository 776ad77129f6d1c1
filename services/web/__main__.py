"""Entry point: ``python -m services.web`` (the pages)."""

import sys

from services.web.app import create_app
from services.web.session import uses_demo_web_key
from shared.service import run_service
from shared.settings import get_settings, is_loopback

if __name__ == "__main__":
    settings = get_settings()
    if not is_loopback(settings.bind_host) and uses_demo_web_key(settings):
        print(
            f"Từ chối khởi động: MAM_BIND_HOST={settings.bind_host} không phải loopback nên phải đặt "
            "MAM_WEB_SECRET_KEY (khóa mẫu công khai: ai cũng ký được mã chống giả mạo biểu mẫu).\n"
            f"Refusing to start: MAM_BIND_HOST={settings.bind_host} is not loopback, so set MAM_WEB_SECRET_KEY "
            "(the public demo key would let anyone sign the forms' CSRF tokens).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    run_service("web", create_app)
