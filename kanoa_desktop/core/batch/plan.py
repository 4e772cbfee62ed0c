"""What a batch asks, on the one input plan (core/inputs/plan.py) with ``each=True``: one
item per figure, table (workbook sheet), PDF page and notebook figure; a file that cannot
be opened is an item that fails without asking the server.

Identity by content: an item's :func:`fingerprint` hashes its file's bytes and everything
that shapes its request (the part, sheet and long side, the table budget, the filled
context/focus/question, and the profile's endpoint, model, parameters and system prompt),
so a rerun keeps the answer of an item only when what it would send is the same.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kanoa_desktop.core.ask.outbox import Outbox
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.records import safe_endpoint
from kanoa_desktop.core.inputs.figures import thumbnail_png
from kanoa_desktop.core.inputs.plan import PlanItem, PlanOptions, load

THUMBNAIL_LONG_SIDE = 192
TEMPLATE_FIELDS = ("name", "stem", "folder", "item")

BatchItem = PlanItem  # a batch's items are the input plan's


class BatchError(KanoaError):
    """The batch cannot run as asked (no files, a bad template)."""

    title = "Cannot run the batch"


@dataclass(frozen=True)
class Template:
    """Context, focus and question with fields filled per item: ``{name}`` (the file's
    name), ``{stem}`` (the name without its extension), ``{folder}`` (the name of the
    folder holding it) and ``{item}`` (the item: ``paper.pdf, page 3``). ``{{`` and ``}}``
    stand for braces."""

    context: str = ""
    focus: str = ""
    question: str = ""

    def check(self) -> None:
        """Raise :class:`BatchError` naming an unknown field or a stray brace."""
        for label, text in (("context", self.context), ("focus", self.focus),
                            ("question", self.question)):  # fmt: skip
            try:
                parsed = list(string.Formatter().parse(text))
            except ValueError as exc:
                raise BatchError(
                    f"The {label} template is not valid: {exc}.",
                    "Write a brace as {{ or }}; fields are "
                    + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                    + ".",
                ) from exc
            for _, name, spec, conv in parsed:
                if name is None:
                    continue
                fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                if name not in TEMPLATE_FIELDS:
                    raise BatchError(
                        f"The {label} template uses {{{name}}}, which is not a field.",
                        f"Use {fields}.",
                    )
                if spec or conv:
                    # A conversion or width ({name!r}, {name:>999}) is Python formatting,
                    # not a field: that is what is refused, not the field.
                    fmt = (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                    fmt = fmt if len(fmt) <= 40 else fmt[:39] + "…"
                    raise BatchError(
                        f"The {label} template writes {{{name}{fmt}}}: {{{name}}} is a "
                        f"field, but a format after it ({fmt}) is not allowed.",
                        f"Write the field alone, {{{name}}}. Fields: {fields}.",
                    )

    def fill(self, item: BatchItem) -> tuple[str, str, str]:
        """(context, focus, question) for ``item``; an empty question is the one the
        window and interpret ask without one (core/ask/prompts.py)."""
        values = {
            "name": item.path.name,
            "stem": item.path.stem,
            "folder": item.path.parent.name,
            "item": item.label,
        }
        return (
            self.context.format_map(values),
            self.focus.format_map(values),
            self.question.format_map(values),
        )


def batch_key(sources: Sequence[Path | str]) -> str:
    """The identity of a batch: its folders and files. The same sources are the same
    batch, whatever changed in them; each item then says by its fingerprint whether its
    stored answer still holds."""
    spec = sorted(str(Path(s).expanduser().resolve()) for s in sources)
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:32]


def fingerprint(
    item: BatchItem, content: str, template: Template, profile: Profile, options: PlanOptions
) -> str:
    """What identifies an item's request (see the module docstring); ``content`` is the
    SHA-256 of its file's bytes."""
    spec = {
        "content": content,
        "item": [item.kind, item.part, item.sheet],
        "asked": list(template.fill(item)),
        "inputs": [options.long_side, options.table_budget],
        "profile": [
            safe_endpoint(profile.api_base),
            profile.model,
            profile.temperature,
            profile.max_tokens,
            profile.top_p,
            profile.vision,
            profile.system_prompt or "",
        ],
    }
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def thumbnail(data: bytes) -> bytes | None:
    """A small PNG of a figure for the reports (None when it cannot be made)."""
    try:
        return thumbnail_png(data, THUMBNAIL_LONG_SIDE)
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety
        return None


def load_item(
    item: BatchItem, template: Template, options: PlanOptions
) -> tuple[Outbox, str, bytes | None, list[str]]:
    """What one item's question carries, the question, a small PNG thumbnail (None for a
    table) and the warnings its file gave. Blocking; raises the loader's typed error."""
    taken = load([item], options)
    context, focus, question = template.fill(item)
    thumb = thumbnail(taken.figures[0].data) if taken.figures else None
    return Outbox.taking(taken, context, focus), question, thumb, taken.warnings
