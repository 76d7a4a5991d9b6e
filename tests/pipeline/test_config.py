"""Settings resolution: what `mpac run` reads before it touches anything."""

import pytest

from pipelines.config import read_config
from pipelines.errors import UserError
from pipelines.marketplace import settings


@pytest.fixture
def marketplace_env(monkeypatch):
    for name in ("BASE_URL", "API_VERSION"):
        monkeypatch.delenv(f"SOURCES__MARKETPLACE__{name}", raising=False)
    monkeypatch.setenv("SOURCES__MARKETPLACE__VENDOR_ID", "123")
    monkeypatch.setenv("SOURCES__MARKETPLACE__EMAIL", "me@example.com")
    monkeypatch.setenv("SOURCES__MARKETPLACE__API_TOKEN", "not-a-real-token")
    return monkeypatch


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_without_base_url_each_api_generation_gets_its_own_live_host(marketplace_env, version):
    marketplace_env.setenv("SOURCES__MARKETPLACE__API_VERSION", version)
    assert read_config().base_url == settings.DEFAULT_BASE_URLS[version]
    assert settings.DEFAULT_BASE_URLS["v2"] != settings.DEFAULT_BASE_URLS["v3"]


def test_an_explicit_base_url_wins_over_the_default(marketplace_env):
    marketplace_env.setenv("SOURCES__MARKETPLACE__API_VERSION", "v3")
    marketplace_env.setenv("SOURCES__MARKETPLACE__BASE_URL", "http://127.0.0.1:9")
    assert read_config().base_url == "http://127.0.0.1:9"


def test_an_unknown_api_version_is_one_sentence(marketplace_env):
    marketplace_env.setenv("SOURCES__MARKETPLACE__API_VERSION", "v4")
    with pytest.raises(UserError, match="api_version must be v2 or v3"):
        read_config()
