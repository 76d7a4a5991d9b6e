"""The simulator's error answers: 401 without credentials, 404 unknown ids, 400 bad input."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "auth",
    [None, ("simulator@example.com", "wrong-token"), ("someone@example.com", "sim-api-token")],
)
def test_missing_or_wrong_credentials_get_401_with_a_json_errors_doc(simulator, auth):
    for base in (simulator.v2_base, simulator.v3_base):
        response = httpx.get(f"{base}/licenses", auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.json()["errors"][0]["message"]
        assert simulator.api_token not in response.text


def test_custom_credentials(make_simulator):
    simulator = make_simulator(credentials=("me@example.com", "s3cret"))
    assert httpx.get(f"{simulator.v2_base}/licenses", auth=("me@example.com", "s3cret")).is_success
    assert (
        httpx.get(
            f"{simulator.v2_base}/licenses", auth=("simulator@example.com", "sim-api-token")
        ).status_code
        == 401
    )


def test_admin_needs_no_credentials(simulator):
    assert httpx.get(f"{simulator.admin_url}/state").is_success


def test_unknown_vendor_or_developer_space_is_404(simulator):
    with simulator.client() as client:
        for url in (
            f"{simulator.base_url}/rest/2/vendors/999/reporting/licenses",
            f"{simulator.base_url}/rest/3/reporting/developer-space/00000000-0000-0000-0000-000000000000/licenses",
            f"{simulator.base_url}/rest/3/developer-space/vendor/999",
            f"{simulator.v2_base}/no-such-report",
            # The v3 hrefs leave out /rest/3, but the paths without it are not served.
            f"{simulator.base_url}/reporting/developer-space/{simulator.vendor.developer_id}/licenses",
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("licenses", {"startDate": "2024-1-1"}, "startDate"),
        ("licenses", {"endDate": "2024-02-30"}, "endDate"),
        ("licenses", {"lastUpdated": "yesterday"}, "lastUpdated"),
        ("licenses", {"offset": "ten"}, "offset"),
        ("licenses", {"offset": "-1"}, "offset"),
        ("licenses", {"limit": "1.5"}, "limit"),
        ("licenses", {"dateType": "middle"}, "dateType"),
        ("licenses", {"hosting": "cloudy"}, "hosting"),
        ("licenses", {"licenseType": "COMMERCIAL"}, "licenseType"),
        ("licenses", {"withDataInsights": "yes"}, "withDataInsights"),
        ("sales/transactions", {"saleType": "gift"}, "saleType"),
        ("sales/transactions", {"excludeZeroTransactions": "1"}, "excludeZeroTransactions"),
        ("licenses/export", {"accept": "xml"}, "accept"),
        ("sales/metrics/churn", {"aggregation": "day"}, "aggregation"),
        ("sales/metrics/conversion", {"groupBy": "hosting"}, "groupBy"),
        ("sales/metrics/renewal/details", {"startDate": "01/02/2024"}, "startDate"),
    ],
)
def test_malformed_parameters_get_400_naming_the_parameter(simulator, path, params, field):
    with simulator.client() as client:
        response = client.get(f"{simulator.v2_base}/{path}", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["path"] == field


def test_async_initiate_validates_its_filters(simulator):
    with simulator.client() as client:
        response = client.post(
            f"{simulator.v3_base}/licenses/async/export", params={"startDate": "x"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Invalid date 'x': expected YYYY-MM-DD.", "path": "startDate"}]
    }
