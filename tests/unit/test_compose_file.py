"""docker-compose.yml cannot run here (no Docker engine); check that it parses
and stays consistent with the local launcher."""

import re
from pathlib import Path

import yaml

from deploy.local.stack import SERVICES

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SERVERS = ("nats", "minio", "elasticsearch")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def _service_containers() -> dict[str, tuple[str, dict]]:  # type: ignore[type-arg]
    """Container name -> (the service it runs, its spec), for every ``python -m services.<name>``."""
    out = {}
    for container, spec in _compose()["services"].items():
        command = spec.get("command", [])
        if command[:2] == ["python", "-m"] and command[2].startswith("services."):
            out[container] = (command[2].removeprefix("services."), spec)
    return out


def test_every_launcher_service_is_in_the_compose_file_with_its_entry_module() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        assert name in services, name
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]


def test_every_container_is_health_checked_and_services_wait_for_healthy_servers() -> None:
    services = _compose()["services"]
    for name, spec in services.items():
        assert "healthcheck" in spec, name
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert {k: v["condition"] for k, v in depends.items()} == {s: "service_healthy" for s in SERVERS}


def test_secrets_are_required_variables_never_literals() -> None:
    text = COMPOSE.read_text()
    assert re.search(r"MAM_S3_SECRET_KEY: \$\{MAM_S3_SECRET_KEY:\?", text)
    assert re.search(r"MAM_SEARCH_CURSOR_KEY: \$\{MAM_SEARCH_CURSOR_KEY:\?", text)
    assert "MAM_API_TOKENS" not in text  # signed tokens and API keys only
    assert "MINIO_ROOT_PASSWORD: ${MAM_S3_SECRET_KEY:?" in text


def test_the_event_store_fsyncs_every_write_in_containers_too() -> None:
    assert "sync_interval: always" in _compose()["configs"]["nats_conf"]["content"]


def test_search_queries_and_projection_run_in_separate_containers() -> None:
    services = _compose()["services"]
    assert services["search"]["environment"]["MAM_SEARCH_RUN_PROJECTOR"] == "false"
    projector = services["search-projector"]
    assert projector["command"] == ["python", "-m", "services.search"]
    assert projector["environment"]["MAM_SEARCH_RUN_PROJECTOR"] == "true"


def test_each_service_container_listens_on_every_interface_at_its_port_setting_and_checks_health_there() -> None:
    containers = _service_containers()
    assert set(SERVICES) <= {service for service, _ in containers.values()}
    for container, (service, spec) in containers.items():
        env = spec["environment"]
        assert env["MAM_BIND_HOST"] == "0.0.0.0", container
        port = env[f"MAM_{service.upper()}_PORT"]
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"]), container


def test_each_service_publishes_its_port_on_the_same_host_port_once() -> None:
    published: list[str] = []
    for container, (service, spec) in _service_containers().items():
        if container != service:
            continue  # a second process of a service (search-projector) is reached through the first
        port = spec["environment"][f"MAM_{service.upper()}_PORT"]
        assert spec.get("ports") == [f"{port}:{port}"], container
        published.append(port)
    assert len(published) == len(set(published))


def test_every_server_in_the_container_profile_requires_credentials_and_the_services_use_them() -> None:
    compose = _compose()
    nats_conf = compose["configs"]["nats_conf"]["content"]
    assert "authorization" in nats_conf and "password: $MAM_NATS_PASSWORD" in nats_conf
    assert compose["services"]["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert "MINIO_ROOT_PASSWORD" in compose["services"]["minio"]["environment"]
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        assert "${MAM_NATS_PASSWORD" in env["MAM_NATS_URL"] and "${MAM_ES_PASSWORD" in env["MAM_ES_URL"], name
