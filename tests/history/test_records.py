"""One mapping per table: every column of a table is a field of its record (or named here
as kept out of it), so a column added to the schema cannot be forgotten by the reads."""

from __future__ import annotations

import dataclasses

import pytest

from kanoa_desktop.core.history import records as R

CASES = [
    (R.CONVERSATIONS, R.StoredConversation, {"deleted_at"}, {"figures", "turns"}),
    (R.TURNS, R.StoredTurn, {"conversation_id", "owner", "beat"}, set()),
    (R.FIGURES, R.StoredFigure, {"size_bytes", "created"}, set()),
    (R.COMPARISONS, R.StoredComparison, set(), {"panes", "pane_numbers"}),
]


@pytest.mark.parametrize(("mapping", "record", "not_read", "not_stored"), CASES)
def test_each_column_is_a_field_of_its_record(store, mapping, record, not_read, not_stored):
    columns = {r[1] for r in store._db.execute(f"PRAGMA table_info({mapping.table})")}
    fields = {mapping.column(f.name) for f in dataclasses.fields(record)} - not_stored
    assert columns - not_read == fields


def test_a_turn_goes_through_its_mapping_both_ways(store):
    values = {"index": 3, "estimated": True, "passages": [{"label": "a.md"}]}
    row = R.TURNS.to_row(values)
    assert row == {"idx": 3, "estimated": 1, "passages": '[{"label": "a.md"}]'}
    got = store._db.execute("SELECT ? AS idx, ? AS estimated, ? AS passages", tuple(row.values()))
    assert R.TURNS.values(got.fetchone(), values) == values
