"""Every event type the code can read has a route: who emits it, who consumes or reads it."""

from shared.events.catalogue import EVENT_ROUTES, SERVICE_ORDER
from shared.events.models import registered_payloads


def registered_types() -> set[str]:
    return {model.EVENT_TYPE for model in registered_payloads()}


def test_every_registered_payload_type_has_a_route_in_the_catalogue() -> None:
    missing = registered_types() - set(EVENT_ROUTES)
    assert not missing, f"add these event types to EVENT_ROUTES in shared/events/catalogue.py: {sorted(missing)}"


def test_the_catalogue_names_no_event_type_that_has_no_payload_model() -> None:
    unknown = set(EVENT_ROUTES) - registered_types()
    assert not unknown, f"EVENT_ROUTES names event types without a registered payload model: {sorted(unknown)}"


def test_every_event_type_has_exactly_one_emitting_service() -> None:
    for event_type, route in EVENT_ROUTES.items():
        assert len(route.emitted_by) == 1, event_type


def test_routes_name_only_known_services_and_none_twice() -> None:
    for event_type, route in EVENT_ROUTES.items():
        for names in (route.emitted_by, route.consumed_by, route.read_by):
            assert set(names) <= set(SERVICE_ORDER), (event_type, names)
            assert len(set(names)) == len(names), (event_type, names)
        assert not set(route.consumed_by) & set(route.read_by), f"{event_type}: consumed and read by the same service"


def test_every_registered_model_is_registered_under_its_own_type_and_version() -> None:
    models = registered_payloads()
    keys = [(m.EVENT_TYPE, m.SCHEMA_VERSION) for m in models]
    assert keys == sorted(set(keys))
    assert all(m.SCHEMA_VERSION >= 1 for m in models)
