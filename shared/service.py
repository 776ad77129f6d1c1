"""One way to start a service: each ``services/<name>/__main__.py`` calls
:func:`run_service`, so every service reads its settings, logs, refuses unsafe
settings and listens on ``MAM_BIND_HOST`` / ``MAM_<NAME>_PORT`` alike.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.http_protocol import KeepsReceivedBytes
from shared.settings import Settings, UnsafeSettingsError, get_settings, refuse_unsafe_defaults

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """Every service logs to stderr in :data:`LOG_FORMAT`, uvicorn's server and
    access logs included (they propagate to the root logger). Does nothing when
    the root logger already has a handler, so calling it twice is harmless."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    plain_library_logs()


# FastStream logs through loggers of its own that do not propagate, with handlers whose
# formatter always colours the level name (``ColourizedFormatter(use_colors=True)``): log
# files filled with ANSI escapes. Its module logger writes to stderr; a NATS broker's to
# stdout, and FastStream adds no handler of its own to that one if it already has one on stdout.
_FASTSTREAM_LOGGERS = (("faststream", "stderr"), ("faststream.access.nats", "stdout"))


def plain_library_logs() -> None:
    """FastStream's logs in :data:`LOG_FORMAT`, plain text, wherever they go to something
    that is not a terminal (a log file, a pipe); on a terminal its colours stay."""
    for name, stream_name in _FASTSTREAM_LOGGERS:
        stream = getattr(sys, stream_name)
        if stream.isatty():
            continue
        logger = logging.getLogger(name)
        handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
        for handler in handlers:
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
        if not handlers and stream is sys.stdout:
            plain = logging.StreamHandler(stream)
            plain.setFormatter(logging.Formatter(LOG_FORMAT))
            logger.addHandler(plain)


def run_service(name: str, create_app: Callable[[Settings], FastAPI]) -> None:
    """Serve ``create_app(settings)`` on ``settings.bind_host`` and ``settings.<name>_port``.

    Exits with status 2 and a bilingual message on stderr, without listening,
    when the settings are unsafe for that host (demo tokens or S3 secret beyond
    loopback).
    """
    settings = get_settings()
    configure_logging()
    try:
        refuse_unsafe_defaults(settings)
    except UnsafeSettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    port = int(getattr(settings, f"{name}_port"))
    # log_config=None: uvicorn keeps its loggers' levels but no format of its own.
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=port,
        log_level="info",
        log_config=None,
        http=KeepsReceivedBytes,
    )
