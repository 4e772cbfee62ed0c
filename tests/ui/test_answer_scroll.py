"""The answer view follows the stream, stays where the user scrolled, and ends on the newest."""

from __future__ import annotations

from kanoa_desktop.ui.answer_view import AnswerView

PARAGRAPH = "The optical density rises exponentially during the log phase.\n\n"


def _view(qtbot) -> AnswerView:
    view = AnswerView()
    qtbot.addWidget(view)
    view.resize(420, 220)
    view.show()
    qtbot.waitExposed(view)
    return view


def _stream(qtbot, view: AnswerView, paragraphs: int) -> None:
    for _ in range(paragraphs):
        view.append(PARAGRAPH)
        view.flush()
        qtbot.wait(1)


def test_the_end_of_an_answer_keeps_the_newest_text_in_view(qtbot):
    view = _view(qtbot)
    bar = view.verticalScrollBar()
    view.set_conversation_markdown("## Earlier\n\n" + PARAGRAPH * 30 + "---\n\n")
    view.begin_answer("**You:** why?\n\n")
    _stream(qtbot, view, 25)
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    view.end_answer()
    qtbot.wait(50)  # let the document's layout finish
    assert bar.maximum() > 0
    assert bar.value() == bar.maximum()  # not back at the top
    assert view.following


def test_scrolling_up_stops_following_and_the_place_is_kept_past_the_end(qtbot):
    view = _view(qtbot)
    bar = view.verticalScrollBar()
    view.begin_answer("**You:** why?\n\n")
    _stream(qtbot, view, 30)
    place = bar.maximum() // 2
    bar.setValue(place)  # the user scrolls up to read
    assert not view.following
    _stream(qtbot, view, 20)
    assert bar.value() == place
    view.end_answer()
    qtbot.wait(50)
    assert bar.value() == place and bar.value() < bar.maximum()
    # Scrolling back to the bottom follows again, and so does the next question.
    bar.setValue(bar.maximum())
    assert view.following
    bar.setValue(0)
    view.begin_answer("**You:** and then?\n\n")
    _stream(qtbot, view, 5)
    assert view.following and bar.value() == bar.maximum()
