"""Answer keys: a lab's own figures, questions and true answers, as a CSV.

The first row names the columns ``file,question,answer`` and, optionally, ``tolerance`` (in
any order, any case). Each later row is one item: ``file`` is a figure (PNG, JPEG, SVG...)
relative to the CSV's folder (or absolute), ``answer`` the true answer (a number, read as
in :mod:`.extract`, or a label), ``tolerance`` the relative tolerance for a numeric answer
(``0.01``; empty: :data:`~.items.DEFAULT_TOLERANCE`, 0.05). A file may carry several
questions.

:func:`load_key` checks the whole key before anything is asked and raises one
:class:`KeyError_` naming every bad row (up to :data:`MAX_PROBLEMS`): a missing or
unreadable file, a file that is not a figure, an empty question or answer, a tolerance that
is not a number from 0 to 1, an empty key. The CSV is read within a budget (:data:`MAX_BYTES`,
:data:`MAX_ROWS`); nothing is changed on disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.inputs.plan import file_digest
from kanoa_desktop.core.safety import escape_control
from kanoa_desktop.core.score.extract import answer_kind, normalise_label
from kanoa_desktop.core.score.items import DEFAULT_TOLERANCE, HINTS, ScoreItem

MAX_BYTES = 4 * 2**20
MAX_ROWS = 10_000
MAX_PROBLEMS = 10
MAX_FIELD = 4000  # characters of a question or an answer
COLUMNS = ("file", "question", "answer", "tolerance")
FIGURE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
     ".svg", ".svgz"}
)  # fmt: skip


class KeyError_(KanoaError):  # noqa: N801 - KeyError is a builtin
    """The answer key cannot be used as it is; ``message`` lists what is wrong."""

    title = "Cannot use the answer key"


@dataclass(frozen=True)
class AnswerKey:
    """A checked key: its items in row order, where it is, and the sha256 of its bytes
    and of every figure it names (what a run's identity is made of)."""

    path: Path
    items: list[ScoreItem]
    digest: str

    @property
    def name(self) -> str:
        return self.path.name


def _shown(path: Path | str) -> str:
    return escape_control(str(path))


def load_key(path: Path | str) -> AnswerKey:
    """Read and check the key at ``path`` (blocking: reads every figure's bytes to hash
    them; run it off the GUI thread). Raises :class:`KeyError_`."""
    path = Path(path).expanduser()
    from kanoa_desktop.core.inputs.chosen import read_chosen

    raw = read_chosen(path, "an answer key (CSV)", KeyError_, limit=MAX_BYTES,
                      too_large=KeyError_, what="answer keys",
                      hint="Split it into several keys.")  # fmt: skip
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KeyError_(
            f"The answer key {_shown(path.name)} is not UTF-8 text (byte {exc.start}).",
            "Save it as CSV UTF-8.",
        ) from exc
    if "\x00" in text:
        raise KeyError_(f"{_shown(path.name)} is not a CSV file.", "Choose the answer key CSV.")
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    hint = "The first row names the columns: file,question,answer (and optionally tolerance)."
    if not rows:
        raise KeyError_(f"The answer key {_shown(path.name)} is empty.", hint)
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in COLUMNS[:3] if c not in header]
    if missing:
        raise KeyError_(
            f"The answer key {_shown(path.name)} has no {', '.join(missing)} column "
            f"(first row: {_shown(','.join(rows[0])[:120])}).",
            hint,
        )
    col = {c: header.index(c) for c in COLUMNS if c in header}
    body = rows[1:]
    if not body:
        raise KeyError_(
            f"The answer key {_shown(path.name)} has a header but no questions.",
            "Add one row per question: file,question,answer.",
        )
    if len(body) > MAX_ROWS:
        raise KeyError_(
            f"The answer key {_shown(path.name)} has {len(body):,} rows; at most "
            f"{MAX_ROWS:,} are scored at once.",
            "Split it into several keys.",
        )
    folder = path.parent
    problems: list[str] = []
    items: list[ScoreItem] = []
    digest = hashlib.sha256(raw)
    hashed: dict[Path, str] = {}
    for n, row in enumerate(body, start=2):  # row numbers as a spreadsheet shows them

        def cell(name: str, row=row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        file, question, answer, tol_text = (cell(c) for c in COLUMNS)
        problem = ""
        if not file:
            problem = "no file named"
        elif not question:
            problem = "the question is empty"
        elif not answer:
            problem = "the answer is empty"
        elif len(question) > MAX_FIELD or len(answer) > MAX_FIELD:
            problem = f"a question or answer is over {MAX_FIELD:,} characters"
        tolerance = DEFAULT_TOLERANCE
        if not problem and tol_text:
            try:
                tolerance = float(tol_text.rstrip("%")) / (100 if tol_text.endswith("%") else 1)
            except ValueError:
                tolerance = -1.0
            if not 0.0 <= tolerance <= 1.0:  # also NaN
                problem = (
                    f"tolerance {tol_text[:40]!r} is not a number from 0 to 1 "
                    "(a relative tolerance: 0.05 is 5 %)"
                )
        figure = (folder / file).expanduser() if file else folder
        if not problem:
            if figure.suffix.lower() not in FIGURE_SUFFIXES:
                problem = f"{file} is not a figure (PNG, JPEG, SVG, GIF, BMP, TIFF, WebP)"
            elif figure not in hashed:
                try:
                    if figure.is_file() and figure.stat().st_size == 0:
                        problem = f"{file} is empty"
                    hashed[figure] = file_digest(figure)  # what identifies it across runs
                except FileNotFoundError:
                    problem = f"{file} was not found in {folder}"
                except IsADirectoryError:
                    problem = f"{file} is a folder, not a figure"
                except OSError as exc:
                    problem = f"{file} cannot be read ({exc.strerror or exc})"
        if problem:
            problems.append(f"row {n}: {_shown(problem)}")
            continue
        digest.update(hashed[figure].encode())
        kind = answer_kind(answer)
        label = normalise_label(answer)
        yesno = kind == "label" and label in ("yes", "no")
        items.append(
            ScoreItem(
                id=f"row {n}",
                index=len(items),
                question=question,
                truth=answer,
                kind=kind,
                template="key",
                tolerance=tolerance,
                choices=("yes", "no") if yesno else (),
                hint=HINTS["number" if kind == "number" else ("yesno" if yesno else "key-label")],
                path=figure,
                source=file,
            )
        )
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise KeyError_(
            f"The answer key {_shown(path.name)} has {len(problems)} bad "
            f"row{'s' if len(problems) != 1 else ''}: "
            + "; ".join(shown)
            + (f"; and {more} more" if more else "")
            + ".",
            "Fix these rows (files are looked up next to the CSV) and run again; "
            "nothing was asked.",
        )
    return AnswerKey(path=path, items=items, digest=digest.hexdigest())


__all__ = ["COLUMNS", "MAX_BYTES", "MAX_ROWS", "AnswerKey", "KeyError_", "load_key"]
