"""The dlt source called directly takes the same defaults as `mpac run`."""

import pytest

import pipelines.marketplace as source_module
from pipelines.marketplace import marketplace, settings
from pipelines.marketplace.client import MarketplaceClient


@pytest.fixture
def built_clients(monkeypatch):
    """The clients the source builds, recorded (nothing is called: building one sends nothing)."""
    for name in ("BASE_URL", "API_VERSION"):
        monkeypatch.delenv(f"SOURCES__MARKETPLACE__{name}", raising=False)
    made: list[MarketplaceClient] = []

    class Recorded(MarketplaceClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(source_module, "MarketplaceClient", Recorded)
    return made


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_the_source_without_base_url_calls_the_live_host_of_its_api_version(built_clients, version):
    marketplace(vendor_id="42", email="me@example.com", api_token="t", api_version=version)
    (client,) = built_clients
    assert client.base_url == settings.DEFAULT_BASE_URLS[version]
    assert client.api_version == version


def test_the_source_keeps_an_explicit_base_url(built_clients):
    marketplace(
        vendor_id="42",
        email="me@example.com",
        api_token="t",
        api_version="v3",
        base_url="http://127.0.0.1:9",
    )
    assert built_clients[0].base_url == "http://127.0.0.1:9"
