"""Batch templates: what is refused is named (a format after a field, not the field)."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.batch.plan import BatchError, Template


@pytest.mark.parametrize(
    ("template", "written", "field"),
    [("{name:>999}", "{name:>999}", "{name}"), ("Run {stem!r}", "{stem!r}", "{stem}")],
)
def test_a_format_after_a_field_is_what_is_refused(template, written, field):
    with pytest.raises(BatchError) as err:
        Template(question=template).check()
    message = err.value.message
    assert f"writes {written}: {field} is a field" in message and "not a field" not in message
    assert f"Write the field alone, {field}" in err.value.hint


def test_an_unknown_field_is_still_named_as_not_a_field():
    with pytest.raises(BatchError) as err:
        Template(context="{title}").check()
    assert "uses {title}, which is not a field" in err.value.message
