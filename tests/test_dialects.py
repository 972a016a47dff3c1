"""Every dialect provides the same statements under the same names, and a new one is told
which it lacks."""

from __future__ import annotations

import inspect

import pytest

from sqlqueue.dialects import DIALECTS
from sqlqueue.dialects.base import Dialect
from sqlqueue.dialects.sqlite import SQLiteDialect

PER_DATABASE = {
    "now",
    "now_plus",
    "insert_jobs",
    "insert_unique_jobs",
    "insert_workflow",
    "results_in_order",
    "chord_results",
    "claim_jobs",
    "record_outcomes",
}
"""The statements no two databases write alike: each dialect module holds its own."""


def test_the_dialect_base_declares_what_each_database_must_provide() -> None:
    assert Dialect.__abstractmethods__ == PER_DATABASE
    doc = inspect.getdoc(inspect.getmodule(Dialect))
    assert doc is not None
    assert all(f"``{name}``" in doc for name in PER_DATABASE)


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_dialect_module_holds_its_own_statements(name: str) -> None:
    dialect = DIALECTS[name]
    assert not dialect.__abstractmethods__
    for statement in PER_DATABASE:
        assert statement in vars(dialect), f"{dialect.__name__} does not define {statement}"


def test_a_dialect_lacking_a_statement_cannot_be_made_and_is_told_which() -> None:
    # Given a new dialect written from SQLite's, all but its claim:
    statements = {name: vars(SQLiteDialect)[name] for name in PER_DATABASE - {"claim_jobs"}}
    half_done = type("HalfDone", (Dialect,), {"name": "half", **statements})

    with pytest.raises(TypeError, match="claim_jobs"):
        half_done()
