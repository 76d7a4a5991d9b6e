"""`make clean` keeps the warehouse; `make clean-data` deletes it and says what (issue 10, 7)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(folder: Path, target: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", target], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_clean_keeps_the_warehouse_and_clean_data_names_what_it_deletes(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    warehouse = tmp_path / "data" / "marketplace.duckdb"
    warehouse.parent.mkdir()
    warehouse.write_bytes(b"history")
    (tmp_path / "dbt" / "target").mkdir(parents=True)
    make(tmp_path, "clean")
    assert warehouse.read_bytes() == b"history"
    assert not (tmp_path / "dbt" / "target").exists()
    said = make(tmp_path, "clean-data")
    assert "data/marketplace.duckdb" in said
    assert not (tmp_path / "data").exists()
    assert "nothing to delete" in make(tmp_path, "clean-data")
