"""Benchmark the knowledge base on a generated corpus, next to kanoa's whole-folder prompt.

Run: ``python bench/bench_kb.py [--files N] [--queries Q] [--regenerate]``. Prints a table;
asserts nothing about time. Aims from the issue (5,000 files, ~50 MB, 2 cores): full index
under a minute, unchanged rescan under 2 s, query under 50 ms.

The corpus (Markdown, Python, text, LaTeX, HTML, CSV, notebooks and ~1 % PDFs made with
matplotlib; words drawn from a Zipf-like vocabulary so BM25 sees realistic posting lists)
is generated once per size and cached under ``paths.cache_dir()/bench-kb``. Every run
indexes into a fresh temporary database, so "full index" is always a cold index of the
cached files (the OS page cache is warm after the first run).

Rows:
- full index: ``KnowledgeBase.index()`` on an empty database;
- unchanged rescan: ``index()`` again (stat only);
- rescan after editing 1 % of files: re-chunks only those;
- search (BM25 + diversity) and ground (search + packing into a 3,000-token budget):
  median and p95 over the queries;
- search with only the corpus's 30 most frequent words (the worst case: they match most
  chunks, so terms are pruned and ranking is bounded, see ``retrieval.prune_common_terms``);
- kanoa (whole folder in the prompt): estimated tokens of every text file against a 4k
  and a 32k context.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kanoa_desktop.core.config import paths  # noqa: E402
from kanoa_desktop.core.kb.index import KnowledgeBase  # noqa: E402
from kanoa_desktop.core.kb.readers import decode_text  # noqa: E402
from kanoa_desktop.core.kb.retrieval import ground, query_terms, search  # noqa: E402
from kanoa_desktop.core.tokens import estimate_text_tokens  # noqa: E402

CORPUS_VERSION = 1
SCIENCE = (
    "temperature salinity glacier plankton monsoon aerosol permafrost albedo turbulence "
    "regression anomaly variance spectrum isotope sediment chlorophyll nitrate upwelling "
    "radiance precipitation humidity convection vorticity gradient diffusion calibration "
    "uncertainty posterior likelihood bootstrap residual covariance wavelet ensemble"
).split()
KINDS = [
    (".md", 60),
    (".py", 15),
    (".txt", 8),
    (".tex", 5),
    (".html", 4),
    (".csv", 3),
    (".ipynb", 4),
    (".pdf", 1),
]


def _vocabulary(rng: random.Random, n: int = 20000) -> tuple[list[str], list[float]]:
    letters = "abcdefghiklmnoprstuvwy"
    words = set(SCIENCE)
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    ordered = list(SCIENCE) + sorted(words - set(SCIENCE))
    rng.shuffle(ordered)
    cum, total = [], 0.0
    for rank in range(1, len(ordered) + 1):
        total += 1.0 / rank**1.1
        cum.append(total)
    return ordered, cum


def _prose(rng, vocab, cum, n_words: int) -> str:
    words = rng.choices(vocab, cum_weights=cum, k=n_words)
    lines, line = [], []
    for i, w in enumerate(words):
        line.append(w)
        if len(line) >= 12:
            lines.append(" ".join(line))
            line = []
        if i % 90 == 89:
            lines.append("")
    lines.append(" ".join(line))
    return "\n".join(lines)


def generate(root: Path, n_files: int, target_bytes: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    rng = random.Random(42)
    vocab, cum = _vocabulary(rng)
    per_file_words = max(target_bytes // n_files // 7, 20)
    exts = [e for e, w in KINDS for _ in range(w)]
    for i in range(n_files):
        ext = ".pdf" if i % 100 == 50 else rng.choice([e for e in exts if e != ".pdf"])
        folder = root / f"project{i % 25:02d}" / f"part{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"doc{i:05d}{ext}"
        n_words = max(int(rng.lognormvariate(0, 0.6) * per_file_words * 0.85), 20)
        text = _prose(rng, vocab, cum, n_words)
        if ext == ".md":
            body = f"# Notes {i}\n\n" + text.replace("\n\n", f"\n\n## Section {i}\n\n", 3)
        elif ext == ".py":
            body = "\n".join(
                f"# {line}" if k % 5 else f"def f{k}(x):\n    return x * {k}"
                for k, line in enumerate(text.splitlines())
            )
        elif ext == ".tex":
            body = f"\\section{{Part {i}}}\n" + text
        elif ext == ".html":
            body = (
                f"<html><head><title>Page {i}</title><script>var x={i};</script></head>"
                f"<body><p>{text.replace(chr(10) * 2, '</p><p>')}</p></body></html>"
            )
        elif ext == ".csv":
            cols = rng.sample(SCIENCE, 4)
            body = (
                ",".join(cols)
                + "\n"
                + "\n".join(
                    ",".join(f"{rng.random():.4f}" for _ in cols) for _ in range(n_words // 4)
                )
            )
        elif ext == ".ipynb":
            cells = [
                {
                    "cell_type": "markdown" if k % 2 else "code",
                    "metadata": {},
                    "source": chunk,
                    **({"outputs": [], "execution_count": None} if k % 2 == 0 else {}),
                }
                for k, chunk in enumerate(text.split("\n\n"))
            ]
            body = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
        elif ext == ".pdf":
            with PdfPages(path) as pdf:
                for page_lines in _pages(text.splitlines(), 40)[:3]:
                    fig = plt.figure(figsize=(8.5, 11))
                    for k, line in enumerate(page_lines):
                        fig.text(0.06, 0.95 - k * 0.022, line, fontsize=8)
                    pdf.savefig(fig)
                    plt.close(fig)
            continue
        else:
            body = text
        path.write_text(body + "\n", encoding="utf-8")


def _pages(lines: list[str], per: int) -> list[list[str]]:
    return [lines[k : k + per] for k in range(0, len(lines), per)] or [[]]


def corpus(n_files: int, regenerate: bool) -> Path:
    target = n_files * 10 * 1024  # ~10 KB a file: 5,000 files ~ 50 MB
    root = paths.cache_dir() / "bench-kb" / f"corpus-v{CORPUS_VERSION}-{n_files}"
    marker = root / ".complete"
    if regenerate or not marker.exists():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        t0 = time.perf_counter()
        generate(root, n_files, target)
        marker.write_text("ok")
        print(f"generated corpus in {time.perf_counter() - t0:.1f} s: {root}", file=sys.stderr)
    return root


def _folder_stats(root: Path) -> tuple[int, int, int]:
    """(files, bytes, kanoa tokens): every text file pasted whole (PDFs are not text)."""
    files = size = tokens = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            files += 1
            size += path.stat().st_size
            if path.suffix != ".pdf":
                text, _note = decode_text(path.read_bytes())
                tokens += estimate_text_tokens(text or "")
    return files, size, tokens


def _queries(n: int) -> list[str]:
    rng = random.Random(5)
    templates = [
        "How does {a} relate to {b}?",
        "What is the {a} {b} trend in {c}",
        "{a}",
        "Explain the {a} anomaly and its {b} uncertainty",
        "figure of {a} versus {b} with {c} and {d}",
    ]
    out = []
    for _ in range(n):
        words = rng.sample(SCIENCE, 4)
        out.append(rng.choice(templates).format(a=words[0], b=words[1], c=words[2], d=words[3]))
    return out


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    root = corpus(args.files, args.regenerate)
    n_files, n_bytes, kanoa_tokens = _folder_stats(root)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase([root], db_path=Path(tmp) / "bench.sqlite3")
        t0 = time.perf_counter()
        report = kb.index()
        full = time.perf_counter() - t0
        rows.append(("full index", f"{full:.2f} s", "< 60 s"))
        t0 = time.perf_counter()
        again = kb.index()
        rescan = time.perf_counter() - t0
        rows.append(("unchanged rescan", f"{rescan:.3f} s", "< 2 s"))
        assert again.indexed == 0  # a correctness check, not a timing one
        edited = sorted(p for p in root.rglob("*.md"))[::100]
        for p in edited:
            os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 1))
            # Same content, new mtime: hashed, then only the mtime is updated.
        t0 = time.perf_counter()
        touched = kb.index()
        rows.append(
            (f"rescan, {len(edited)} files touched", f"{time.perf_counter() - t0:.3f} s", "")
        )
        for p in edited:  # restore the cached corpus's mtimes for the next run
            os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns - 1))
        kb.index()

        queries = _queries(args.queries)
        search_ms, ground_ms = [], []
        for q in queries:
            t0 = time.perf_counter()
            search(kb, query_terms(q), k=8)
            search_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            g = ground(kb, q, budget=3000, allow_whole=False)
            ground_ms.append((time.perf_counter() - t0) * 1000)
            assert g.tokens <= 3000
        rows.append(
            (
                "search (BM25 + diversity), median / p95",
                f"{statistics.median(search_ms):.1f} / {_pct(search_ms, 0.95):.1f} ms",
                "< 50 ms",
            )
        )
        rows.append(
            (
                "ground (search + pack 3k budget), median / p95",
                f"{statistics.median(ground_ms):.1f} / {_pct(ground_ms, 0.95):.1f} ms",
                "< 50 ms",
            )
        )
        # Worst case: questions made only of the corpus's most frequent words, which match
        # most chunks (cold: the per-thread document-frequency cache is cleared each time).
        vocab, _cum = _vocabulary(random.Random(42))
        rng = random.Random(9)
        common_ms = []
        for _ in range(max(args.queries // 2, 5)):
            kb._local.df_cache = None
            words = rng.sample(vocab[:30], 4)
            t0 = time.perf_counter()
            search(kb, words, k=8)
            common_ms.append((time.perf_counter() - t0) * 1000)
        rows.append(
            (
                "search, most frequent words only (cold), median / p95",
                f"{statistics.median(common_ms):.1f} / {_pct(common_ms, 0.95):.1f} ms",
                "< 50 ms",
            )
        )
        stats = kb.stats()
        db_size = sum(
            os.path.getsize(str(kb.db_path) + s)
            for s in ("", "-wal")
            if os.path.exists(str(kb.db_path) + s)
        )
        kb.close()

    print(
        f"kanoa desktop knowledge base benchmark  ({platform.python_version()}, "
        f"{os.cpu_count()} CPUs, SQLite {__import__('sqlite3').sqlite_version})"
    )
    print(f"corpus: {n_files} files, {n_bytes / 1e6:.1f} MB  ({root})")
    print(
        f"index: {stats['files']} files, {stats['chunks']} chunks, "
        f"{len(report.problems)} problems, database {db_size / 1e6:.1f} MB; "
        f"touched run: {touched.touched} touched, {touched.indexed} re-read"
    )
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'measure':<{width}}{'result':>22}   aim")
    for name, value, aim in rows:
        print(f"{name:<{width}}{value:>22}   {aim}")
    print("\nkanoa's approach (every text file pasted into the prompt):")
    for ctx in (4096, 32768):
        print(
            f"  {kanoa_tokens:,} tokens against a {ctx:,}-token context: "
            f"{kanoa_tokens / ctx:,.0f}x the whole context"
        )
    print("  retrieval sends at most the budget (3,000 tokens above), citing its sources.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
