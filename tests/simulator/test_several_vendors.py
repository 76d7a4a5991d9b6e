"""One simulated host serving several vendors, as the live API does for an agency's accounts."""

from __future__ import annotations

from typing import Any

from pipelines.simulator.harness import MoreVendor

OTHER = ("other@example.com", "other-token")


def test_each_vendor_is_served_its_own_data_and_only_to_its_own_account(
    make_simulator: Any,
) -> None:
    sim = make_simulator(seed=42, more_vendors=[MoreVendor(seed=7, credentials=OTHER)])
    first, second = sim.states
    assert first.vendor.vendor_id != second.vendor.vendor_id
    other_base = f"{sim.base_url}/rest/2/vendors/{second.vendor.vendor_id}/reporting"
    with sim.client() as mine, sim.client(auth=OTHER) as theirs:
        own = mine.get(f"{sim.v2_base}/licenses", params={"limit": 50}).json()["licenses"]
        other = theirs.get(f"{other_base}/licenses", params={"limit": 50}).json()["licenses"]
        # An account asking for a vendor it does not own meets the live API's 404.
        assert mine.get(f"{other_base}/licenses").status_code == 404
        assert theirs.get(f"{sim.v2_base}/licenses").status_code == 404
    assert own
    assert other
    assert {r["addonLicenseId"] for r in own} != {r["addonLicenseId"] for r in other}


def test_the_clock_and_the_ground_truth_are_per_vendor(make_simulator: Any) -> None:
    sim = make_simulator(seed=42, more_vendors=[MoreVendor(seed=7)])
    first, second = sim.states
    sim.advance(3)
    assert first.vendor.today == second.vendor.today
    assert sim.expected(second.vendor.vendor_id).mrr != sim.expected().mrr
    with sim.client() as client:
        state = client.get(f"{sim.admin_url}/state", params={"vendor": second.vendor.vendor_id})
        truth = client.get(
            f"{sim.admin_url}/expected/mrr", params={"vendor": second.vendor.vendor_id}
        )
    assert state.json()["vendor_id"] == second.vendor.vendor_id
    assert state.json()["vendors"] == [first.vendor.vendor_id, second.vendor.vendor_id]
    assert len(truth.json()) == len(sim.expected(second.vendor.vendor_id).mrr)
