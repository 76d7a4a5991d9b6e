"""Issue 10, finding 8: `pii = keep | hash | drop` on the raw tables, the marts and the published
copy; what the policy removes is nowhere in either file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.marketplace.helpers import pii_hash
from pipelines.warehouse import RAW_DATASET
from tests.helpers import cli, query, simulator_env
from tests.pipeline.test_runner import truth

pytestmark = pytest.mark.integration

SALT = "pii-salt-for-the-test-0123456789"


def real_emails(sim: Any) -> set[str]:
    found: set[str] = set()
    for kind, holder in (("licenses", "contactDetails"), ("transactions", "customerDetails")):
        for record in truth(sim, kind):
            for contact in ("technicalContact", "billingContact"):
                email = ((record.get(holder) or {}).get(contact) or {}).get("email")
                found.add(email)
    found |= {r.get("email") for r in truth(sim, "feedback")}
    return {e for e in found if e and e != "RTBF"}


def files_holding(path: Path, values: set[str]) -> int:
    """How many text cells of every table in the file hold one of `values`."""
    hits = 0
    with duckdb.connect(str(path), read_only=True) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR'"
        ).fetchall()
        connection.execute(
            "create temp table wanted as select unnest(?) as value", [sorted(values)]
        )
        for schema, table, column in columns:
            [(count,)] = connection.execute(
                f'select count(*) from "{schema}"."{table}" '
                f'where "{column}" in (select value from wanted)'
            ).fetchall()
            hits += count
    return hits


@pytest.mark.parametrize("mode", ["keep", "hash", "drop"])
def test_the_pii_policy_holds_in_raw_tables_marts_and_the_published_copy(
    make_simulator: Any, tmp_path: Path, mode: str, request: pytest.FixtureRequest
) -> None:
    if mode == "keep":
        # keep is the default: built_warehouse's build tests this data. hash and drop change
        # the data, so their builds keep the data tests.
        request.getfixturevalue("models_only")
    sim = make_simulator(size="tiny")
    warehouse, published = tmp_path / "data" / "marketplace.duckdb", tmp_path / "bi" / "copy.duckdb"
    env = simulator_env(sim, pii=mode, pii_salt=SALT)
    result = cli(["run", "--warehouse", str(warehouse), "--publish", str(published)], env)
    assert result.exit_code == 0, result.output
    assert SALT not in result.output
    emails = real_emails(sim)
    assert emails

    raw_emails = query(
        warehouse,
        "select distinct contact_details__technical_contact__email "
        f"from {RAW_DATASET}.licenses where _dlt_valid_to is null"
        if mode != "drop"
        else "select 1 where false",
    )
    [(companies,)] = query(
        warehouse, f"select count(contact_details__company) from {RAW_DATASET}.licenses"
    )
    assert companies > 0  # company (and country) always stay
    feedback_emails = {r[0] for r in query(warehouse, "select email from marts.fct_feedback")}

    if mode == "keep":
        assert files_holding(warehouse, emails) > 0
        assert files_holding(published, emails) > 0
        assert feedback_emails & emails
        return
    assert files_holding(warehouse, emails) == 0
    assert files_holding(published, emails) == 0
    if mode == "hash":
        hashed = {pii_hash(e, SALT, "email") for e in emails}
        assert {e for (e,) in raw_emails} - {"RTBF", None} <= hashed
        assert {e for e in feedback_emails if e and e != "RTBF"} <= hashed
        assert all(re.fullmatch("[0-9a-f]{64}", e) for e in feedback_emails - {None, "RTBF"})
    else:
        columns = {
            c
            for (c,) in query(
                warehouse,
                "select column_name from information_schema.columns "
                f"where table_schema = '{RAW_DATASET}' and table_name = 'licenses'",
            )
        }
        assert not [c for c in columns if c.endswith(("__email", "__name", "__phone"))]
        assert feedback_emails <= {None}


def test_hash_without_a_salt_is_one_sentence_before_anything_runs(
    simulator: Any, tmp_path: Path
) -> None:
    result = cli(
        ["run", "--warehouse", str(tmp_path / "data" / "w.duckdb")],
        simulator_env(simulator, pii="hash"),
    )
    assert result.exit_code == 2
    assert 'pii = "hash" needs a pii_salt' in " ".join(result.output.split())
    assert not (tmp_path / "data").exists()
