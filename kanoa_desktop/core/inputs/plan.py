"""Files -> the items a question sends: the one plan of the window, interpret, compare and
batch, so the same files and options send the same images and table text. What files
become (README and ``--help`` say the same): a figure is one image at the long side; a
table (CSV, TSV, Parquet) its summary, within the table budget; a workbook one sheet
(``sheet``, else the first with data; a warning names the others); a PDF whole pages:
``pages`` ("1,3-4", "all"), which only a one-page PDF may leave out (a longer one is
refused with its page count); a notebook every figure output with its cell's code as
context; a folder its figures, tables, PDFs and notebooks by name (no subfolders, no
hidden files). A batch (``each=True``) asks each page (all by default), notebook figure
and sheet with data on its own, and a file it cannot open is an item that fails without
asking. A question carries one table and at most ``max_images`` images (the profile's,
else ``MAX_IMAGES_PER_QUESTION``), checked before any page is rendered. The window's PDF
picker hands over items of this plan (pages, regions, embedded images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.inputs.figures import IMAGE_SUFFIXES, PreparedFigure
from kanoa_desktop.core.inputs.load import TABLE_SUFFIXES, input_kind, load_input
from kanoa_desktop.core.inputs.tables import DEFAULT_TABLE_TOKEN_BUDGET, LoadedTable

MAX_IMAGES_PER_QUESTION = 32  # when the profile does not know its server's limit
FOLDER_SUFFIXES = IMAGE_SUFFIXES | TABLE_SUFFIXES | {".pdf", ".ipynb"}
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}


class PlanError(KanoaError):
    """The inputs cannot make a question as asked (pages, images, tables, paths)."""

    title = "Cannot use these inputs"


@dataclass(frozen=True)
class PlanOptions:
    """The options that shape what files become; one set for every face."""

    pages: str | None = None  # "1,3-4" or "all"; None: the default of the file kind
    sheet: str | None = None  # None: the first sheet with data
    long_side: int = 1024
    max_images: int | None = None  # the profile's images per prompt; None: unknown
    table_budget: int = DEFAULT_TABLE_TOKEN_BUDGET
    each: bool = False  # a batch: one item per page, notebook figure and sheet

    @classmethod
    def for_profile(cls, profile: Any, **options: Any) -> PlanOptions:
        return cls(long_side=profile.image_long_side, max_images=profile.max_images, **options)


@dataclass(frozen=True)
class PlanItem:
    """One thing to send: a figure, a table (a sheet), a PDF page, region or embedded
    image, or a notebook figure. ``kind`` is "figure", "table", "pdf", "notebook", or
    "file" for a file that cannot be used (``problem``/``hint`` say why). ``part`` is the
    0-based page or notebook figure; ``key`` names the item stably across runs."""

    path: Path
    kind: str
    label: str
    part: int | None = None
    sheet: str | None = None
    rect: tuple[float, float, float, float] | None = None
    image: int | None = None
    problem: str = ""
    hint: str = ""
    loaded: Any = field(default=None, compare=False, repr=False)  # kept by a question's plan

    @property
    def key(self) -> str:
        part, image = (None if n is None else n + 1 for n in (self.part, self.image))
        rect = self.rect and ",".join(f"{v:g}" for v in self.rect)
        where = {"page" if self.kind == "pdf" else "figure": part, "sheet": self.sheet,
                 "rect": rect, "image": image}  # fmt: skip
        return "#".join([str(self.path)] + [f"{k}={v}" for k, v in where.items() if v])


@dataclass
class InputPlan:
    items: list[PlanItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Taken:
    """What items give a question: figures, one table with its summary, the notebook
    cells' code (it follows the user's context) and the plan's warnings."""

    figures: list[PreparedFigure] = field(default_factory=list)
    table: LoadedTable | None = None
    table_summary: str = ""
    context: str = ""
    warnings: list[str] = field(default_factory=list)

    def add(self, other: Taken) -> None:
        if other.table is not None:
            if self.table is not None:
                raise PlanError(
                    f"One table per question: {self.table.name} and {other.table.name} were given.",
                    "Ask about each table separately (or use kanoa-desktop batch).",
                )
            self.table, self.table_summary = other.table, other.table_summary
        self.figures += other.figures
        self.context = "\n\n".join(t for t in (self.context, other.context) if t)
        self.warnings += other.warnings


def expand(sources: Iterable[Path | str]) -> list[Path]:
    """The files of ``sources``: each folder's figures, tables, PDFs and notebooks (not its
    subfolders, not hidden files) by name; files named directly as given; each file once.
    Raises :class:`PlanError` for a missing path or when nothing is left."""
    files: dict[Path, None] = {}
    for src in sources:
        path = Path(src).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in FOLDER_SUFFIXES
            )  # fmt: skip
        elif path.exists():
            found = [path]
        else:
            raise PlanError(f"{path} does not exist.", "Check the folder or file name.")
        for f in found:
            files.setdefault(f.resolve(), None)
    if not files:
        raise PlanError(
            "There is nothing to interpret: no figure, table, PDF or notebook was found.",
            "Choose a folder holding PNG, JPEG, SVG, CSV, Excel, PDF or notebook files.",
        )
    return list(files)


def select_pages(spec: str, doc: Any) -> list[int]:
    """The 0-based pages ``spec`` ("2", "1,3-4", "all") names in ``doc``, checked against
    its real page count before any page is rendered. Raises :class:`PlanError`."""
    offered, total, name = doc.page_count, doc.total_pages, doc.name
    if spec.strip().lower() == "all":
        return list(range(offered))
    ranges = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi or lo)))
    except ValueError:
        raise PlanError(
            f"Pages {spec!r} are not a list of page numbers.", "Write them as 1,3-4, or all."
        ) from None
    for first, last in ranges:
        if first < 1 or last < first:
            raise PlanError(f"Pages {spec!r}: pages count from 1, low to high.", "E.g. 1,3-4.")
        if last > total:
            raise PlanError(
                f"{name} has {total:,} page{'s' if total != 1 else ''}; there is no page {last:,}.",
                f"Choose pages from 1 to {total:,}.",
            )
        if last > offered:
            raise PlanError(
                f"{name} has {total:,} pages; only the first {offered:,} can be used.",
                "Extract the pages you need into a smaller PDF.",
            )
    return list(dict.fromkeys(p - 1 for first, last in ranges for p in range(first, last + 1)))


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes (what identifies an item's content across runs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def plan(sources: Sequence[Path | str], options: PlanOptions) -> InputPlan:
    """The items of ``sources`` under ``options`` (see the module docstring). Blocking
    (opens PDFs, notebooks and tables): run it off the GUI thread."""
    out = InputPlan()
    for path in expand(sources):
        try:
            out.items += _plan_file(path, options, out.warnings)
        except KanoaError as err:
            if not options.each:
                raise
            out.items.append(PlanItem(path, "file", path.name, problem=err.message,
                                      hint=err.hint or ""))  # fmt: skip
    if not options.each:
        images = sum(i.kind in ("figure", "pdf", "notebook") for i in out.items)
        cap = options.max_images or MAX_IMAGES_PER_QUESTION
        if images > cap:
            whose = "this profile's server" if options.max_images else "one question"
            raise PlanError(
                f"These inputs make {images:,} images; {whose} takes at most {cap}.",
                "Choose fewer pages or files, or ask them one by one with kanoa-desktop batch.",
            )
    return out


def _plan_file(path: Path, options: PlanOptions, warnings: list[str]) -> list[PlanItem]:
    name, kind = path.name, input_kind(path)
    if kind == "figure":
        return [PlanItem(path, "figure", name)]
    if kind == "table" and options.each and path.suffix.lower() in WORKBOOK_SUFFIXES:
        from kanoa_desktop.core.inputs.tables import list_sheets

        sheets = [options.sheet] if options.sheet else list_sheets(path, with_data=True)
        several = len(list_sheets(path)) > 1  # labelled as the table names itself
        return [PlanItem(path, "table", f"{name} [{s}]" if several else name, sheet=s)
                for s in sheets]  # fmt: skip
    loaded = load_input(path, long_side=options.long_side, sheet=options.sheet)
    keep = None if options.each else loaded
    if kind == "pdf":
        with loaded as doc:
            if options.pages is not None:
                pages = select_pages(options.pages, doc)
            elif options.each or doc.total_pages == 1:
                pages = list(range(doc.page_count))
            else:
                raise PlanError(
                    f"{name} has {doc.total_pages:,} pages; say which to send.",
                    "Choose pages with --pages (e.g. --pages 1 or --pages 2-4, or --pages "
                    "all), or ask each page with kanoa-desktop batch.",
                )
            warnings += [f"{name}: {n}" for n in doc.notes if len(pages) == doc.page_count]
        return [PlanItem(path, "pdf", f"{name}, page {n + 1}", part=n) for n in pages]
    if kind == "notebook":
        warnings += [f"{name}: {note}" for note in loaded.notes]
        label = "{}, figure {} (cell {})".format
        return [PlanItem(path, "notebook", label(name, i + 1, f.cell_number), part=i,
                         loaded=keep and f) for i, f in enumerate(loaded.figures)]  # fmt: skip
    warnings += [f"{loaded.name}: {w}" for w in loaded.warnings]
    if options.sheet is None and len(loaded.sheets) > 1:
        others = ", ".join(repr(s) for s in loaded.sheets if s != loaded.sheet)
        warnings.append(f"{name}: sheet {loaded.sheet!r} is sent; the workbook also has "
                        f"{others} (choose one with --sheet).")  # fmt: skip
    return [PlanItem(path, "table", loaded.name, sheet=loaded.sheet, loaded=keep)]


def load(items: Sequence[PlanItem], options: PlanOptions, *, doc: Any = None) -> Taken:
    """What ``items`` send, each file opened once (``doc``: a PDF the caller holds open,
    the window's picker). Blocking; raises the loader's typed error (a KanoaError)."""
    out = Taken()
    for path, group in groupby(items, key=lambda i: i.path):
        out.add(_load_file(path, list(group), options, doc))
    return out


def _load_file(path: Path, items: list[PlanItem], options: PlanOptions, doc: Any) -> Taken:
    first, side = items[0], options.long_side
    if first.problem:
        raise PlanError(first.problem, first.hint)
    loaded = doc or first.loaded or load_input(path, long_side=side, sheet=first.sheet)
    if first.kind == "pdf":
        try:
            return Taken([_take_pdf(loaded, i, side) for i in items])
        finally:
            if doc is None:
                loaded.close()
    if first.kind == "notebook":
        every = [i.loaded for i in items] if first.loaded else loaded.figures
        if not first.loaded and items[-1].part >= len(every):
            raise PlanError(f"{items[-1].label} is no longer in {path.name}.", "Run again.")
        figures = every if first.loaded else [every[i.part] for i in items]
        return Taken([f.figure for f in figures], context="\n\n".join(f.context for f in figures))
    if first.kind == "table":
        told = [] if first.loaded else [f"{loaded.name}: {w}" for w in loaded.warnings]
        return Taken(table=loaded, table_summary=table_summary(loaded, options.table_budget),
                     warnings=told)  # fmt: skip
    return Taken([loaded])


def table_summary(table: LoadedTable, budget: int = DEFAULT_TABLE_TOKEN_BUDGET) -> str:
    """The text a table sends, the same from every face (the window makes it after
    showing the table)."""
    from kanoa_desktop.core.inputs.tables import summarise_table

    return summarise_table(table, token_budget=budget, name=table.name)


def _take_pdf(pdf: Any, item: PlanItem, side: int) -> PreparedFigure:
    if item.rect is not None:
        return pdf.take_crop(item.part, item.rect, long_side=side)
    if item.image is not None:
        return pdf.take_image(item.part, item.image, long_side=side)
    return pdf.take_page(item.part, long_side=side)


def pdf_item(doc: Any, page: int, *, rect: Any = None, image: int | None = None) -> PlanItem:
    """A page of an open PDF, a region of it or an embedded image (the window's picker)."""
    label = f"{doc.name}, page {page + 1}"
    label += " (crop)" if rect is not None else f", image {image + 1}" if image is not None else ""
    return PlanItem(doc.path, "pdf", label, part=page, rect=rect, image=image)


def take(sources: Sequence[Path | str], options: PlanOptions) -> Taken:
    """One question's figures, table and cell code from ``sources`` (the command line's
    interpret and compare): planned, checked, then loaded. Raises a KanoaError."""
    planned = plan(sources, options)
    out = load(planned.items, options)
    out.warnings[:0] = planned.warnings
    return out
