"""Reading a model's answer and judging it: the answer styles real models write, the
tolerance rules of the suite and of a key."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.score.extract import (
    answer_kind,
    extract,
    judge,
    normalise_label,
    parse_number,
)

# (reply, kind, choices, what is read, how)
STYLES = [
    ("ANSWER: 40", "number", (), 40.0, "answer line"),
    ("The bar ends just under the gridline.\nANSWER: about 40", "number", (), 40.0, "answer line"),
    ("ANSWER: ~40", "number", (), 40.0, "answer line"),
    ("ANSWER: 4.0e1", "number", (), 40.0, "answer line"),
    ("ANSWER: 40 %", "number", (), 40.0, "answer line"),
    ("ANSWER: 40%", "number", (), 40.0, "answer line"),
    ("ANSWER: 1,234.5", "number", (), 1234.5, "answer line"),
    ("ANSWER: \u221212", "number", (), -12.0, "answer line"),  # a Unicode minus
    ("ANSWER: 40 (approximately; the label is hidden)", "number", (), 40.0, "answer line"),
    ("**Answer:** 40", "number", (), 40.0, "answer line"),
    ("Final answer: 40.", "number", (), 40.0, "answer line"),
    ("answer : 0.25", "number", (), 0.25, "answer line"),
    ("ANSWER: .5", "number", (), 0.5, "answer line"),
    # The answer line wins over numbers in the working; the last one counts.
    ("38 or 42?\nANSWER: 41\nsome text\nANSWER: 42", "number", (), 42.0, "answer line"),
    # No answer line: the last number of the reply.
    ("It starts at 10 and reaches 40.", "number", (), 40.0, "last number"),
    ("There are 3 series.", "count", (), 3.0, "last number"),
]

UNPARSED = [
    ("ANSWER: forty", "number", ()),  # words are not read
    ("forty", "number", ()),
    ("ANSWER: forty", "count", ()),
    ("I cannot read the chart.", "number", ()),
    ("", "number", ()),
    ("ANSWER:", "label", ()),
    ("ANSWER: **", "label", ("yes", "no")),
    ("No label is named here.", "label", ("Alpha", "Beta")),
]


@pytest.mark.parametrize(("reply", "kind", "choices", "number", "how"), STYLES)
def test_numbers_are_read_in_the_styles_models_write_them(reply, kind, choices, number, how):
    got = extract(reply, kind, choices)
    assert (got.number, got.how) == (number, how)
    assert not got.unparsed


@pytest.mark.parametrize(("reply", "kind", "choices"), UNPARSED)
def test_what_cannot_be_read_is_recorded_as_unparsed_and_counts_wrong(reply, kind, choices):
    got = extract(reply, kind, choices)
    assert got.unparsed and got.value == "" and got.number is None
    assert judge(got, "40", kind, tolerance=0.05, axis_span=100).correct is False


@pytest.mark.parametrize(
    ("reply", "choices", "truth"),
    [
        ("ANSWER: beta", ("Alpha", "Beta"), "Beta"),  # a label in another case
        ("ANSWER: BETA.", ("Alpha", "Beta"), "Beta"),
        ('ANSWER: "Lab  C"', ("Lab C", "Lab D"), "Lab C"),
        ("ANSWER: **Treatment A**", ("Control", "Treatment A"), "Treatment A"),
        ("ANSWER: Beta (the tallest bar)", ("Alpha", "Beta"), "Beta"),
        ("Alpha is low; Beta is clearly the highest.", ("Alpha", "Beta"), "Beta"),
        ("ANSWER: Yes", ("yes", "no"), "yes"),
        ("ANSWER: true", ("yes", "no"), "yes"),
        ("ANSWER: Rising", ("increasing", "decreasing", "flat"), "increasing"),
        ("ANSWER: no clear trend", ("increasing", "decreasing", "flat"), "flat"),
        ("ANSWER: 2015", ("2014", "2015"), "2015"),
    ],
)
def test_labels_match_after_normalisation(reply, choices, truth):
    got = extract(reply, "label", choices)
    assert judge(got, truth, "label", tolerance=0.05).correct, got


def test_a_wrong_label_and_a_label_naming_two_choices_are_wrong():
    assert not judge(extract("ANSWER: Alpha", "label", ("Alpha", "Beta")), "Beta", "label",
                     tolerance=0.05).correct  # fmt: skip
    both = extract("ANSWER: Alpha or Beta", "label", ("Alpha", "Beta"))
    assert not judge(both, "Beta", "label", tolerance=0.05).correct


def test_a_key_label_without_choices_falls_back_to_the_last_line():
    got = extract("Looking at the legend...\n\nCortex", "label")
    assert got.how == "last line"
    assert judge(got, "cortex", "label", tolerance=0.05).correct


# ---------------------------------------------------------------- tolerance


def _judge_number(answer: float, truth: str, *, tol: float, span: float | None):
    got = extract(f"ANSWER: {answer}", "number")
    return judge(got, truth, "number", tolerance=tol, axis_span=span).correct


@pytest.mark.parametrize(
    ("answer", "truth", "tol", "span", "right"),
    [
        (42.0, "40", 0.05, 100, True),  # 5 % of 40 = 2
        (42.1, "40", 0.05, 100, False),
        (38.0, "40", 0.05, 100, True),
        (37.9, "40", 0.05, 100, False),
        # Small truths: 1 % of the axis span is the floor (5 % of 2 is only 0.1).
        (2.9, "2", 0.05, 100, True),
        (3.1, "2", 0.05, 100, False),
        # A truth of 0 needs the axis term.
        (0.9, "0", 0.05, 100, True),
        (1.1, "0", 0.05, 100, False),
        (-0.5, "0", 0.05, 100, True),
        # A key has no axis: its tolerance alone, and a truth of 0 must be exact.
        (0.0, "0", 0.05, None, True),
        (0.001, "0", 0.05, None, False),
        (40.3, "40", 0.01, None, True),  # a row's own tolerance of 1 %
        (40.5, "40", 0.01, None, False),
        # Negative truths (A - B): the size of the truth counts.
        (-21.0, "-20", 0.05, 100, True),
        (-22.0, "-20", 0.05, 100, False),
        # Binary floating point never decides: 0.1 + 0.2 is 0.3.
        (0.1 + 0.2, "0.3", 0.0, None, True),
    ],
)
def test_numbers_are_right_within_the_larger_of_the_relative_and_the_axis_tolerance(
    answer, truth, tol, span, right
):
    assert _judge_number(answer, truth, tol=tol, span=span) is right


def test_counts_must_be_exact_and_relative_error_is_reported_for_numbers():
    assert judge(extract("ANSWER: 3", "count"), "3", "count", tolerance=0.5).correct
    assert not judge(extract("ANSWER: 4", "count"), "3", "count", tolerance=0.5).correct
    assert not judge(extract("ANSWER: 3.2", "count"), "3", "count", tolerance=0.5).correct
    j = judge(extract("ANSWER: 44", "number"), "40", "number", tolerance=0.05, axis_span=100)
    assert j.rel_error == pytest.approx(0.1) and not j.correct
    assert judge(extract("ANSWER: 1", "number"), "0", "number", tolerance=0.05,
                 axis_span=100).rel_error is None  # fmt: skip


def test_a_key_answer_is_a_number_only_when_it_is_one_number():
    assert [answer_kind(a) for a in ("40", "4.0e1", "-3.5", "12 %", "\u22121", "1,200")] == [
        "number"
    ] * 6
    assert [answer_kind(a) for a in ("Beta", "yes", "12 mice", "nan", "inf", "")] == ["label"] * 6


def test_normalisation_and_number_parsing_details():
    assert normalise_label("  \u201cLab   C.\u201d ") == "lab c"
    assert normalise_label("ＢＥＴＡ") == "beta"  # full-width letters (NFKC)
    assert parse_number("v2 is 40") == 40.0  # a digit inside a word is not a number
    assert parse_number("x = 3e") is None
