"""Real files of every kind the knowledge base reads, and bad ones, written on demand."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A real PDF (matplotlib's PDF backend), one list of text lines per page."""
    with PdfPages(path) as pdf:
        for lines in pages:
            fig = plt.figure(figsize=(8.5, 11))
            for i, line in enumerate(lines):
                fig.text(0.08, 0.92 - i * 0.04, line, fontsize=11)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A Jupyter notebook (nbformat 4) with (cell_type, source) cells."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": kind,
                "metadata": {},
                "source": src.splitlines(keepends=True),
                **(
                    {
                        "outputs": [
                            {
                                "output_type": "stream",
                                "name": "stdout",
                                "text": ["OUTPUTSHOULDNOTBEINDEXED\n"],
                            }
                        ],
                        "execution_count": 1,
                    }
                    if kind == "code"
                    else {}
                ),
            }
            for kind, src in cells
        ],
    }
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


# --- an encrypted PDF, written by hand ---------------------------------------------
# pypdfium2 cannot encrypt and we add no dependency for it: this is the PDF standard
# security handler, revision 2 (40-bit RC4), as in PDF 1.7 section 7.6.3, with user
# password "secret". pdfium opens it with that password (a test checks it), so it is a
# genuinely encrypted file, not a file that merely claims to be.

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _padded(password: bytes) -> bytes:
    return (password + _PAD)[:32]


def write_encrypted_pdf(
    path: Path, user_password: bytes = b"secret", text: str = "Confidential sea level notes"
) -> Path:
    owner_key = hashlib.md5(_padded(b"owner")).digest()[:5]
    o_value = _rc4(owner_key, _padded(user_password))
    permissions = -4
    file_id = hashlib.md5(b"kanoa-test").digest()
    key = hashlib.md5(
        _padded(user_password) + o_value + struct.pack("<i", permissions) + file_id
    ).digest()[:5]
    u_value = _rc4(key, _PAD)

    def encrypt(num: int, data: bytes) -> bytes:
        obj_key = hashlib.md5(key + struct.pack("<i", num)[:3] + b"\x00\x00").digest()[:10]
        return _rc4(obj_key, data)

    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    stream = encrypt(4, content)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <"
        + o_value.hex().encode()
        + b"> /U <"
        + u_value.hex().encode()
        + b"> /P "
        + str(permissions).encode()
        + b" >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        b"trailer\n<< /Size "
        + str(len(objects) + 1).encode()
        + b" /Root 1 0 R /Encrypt 6 0 R /ID [<"
        + file_id.hex().encode()
        + b"> <"
        + file_id.hex().encode()
        + b">] >>\nstartxref\n"
        + str(xref).encode()
        + b"\n%%EOF\n"
    )
    path.write_bytes(bytes(out))
    return path


def write_every_kind(root: Path) -> dict[str, Path]:
    """One good file of each supported kind, each with a distinctive word to search."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, text: str) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        files[name] = path

    put(
        "notes.md",
        "# Methods\n\nWe measured the zephyrite concentration weekly.\n\n"
        "## Results\n\nConcentration doubled after the storm.\n",
    )
    put("readme.txt", "Plain text about the quillwort survey.\n")
    put("guide.rst", "Guide\n=====\n\nThe marlinspike protocol is described here.\n")
    put(
        "paper.tex",
        "\\section{Introduction}\nWe study the halocline depth.\n"
        "% a comment\n\\section{Data}\nArgo floats.\n",
    )
    put(
        "refs.bib",
        "@article{smith2020,\n  title={Thermohaline circulation},\n"
        "  author={Smith},\n  year={2020}\n}\n",
    )
    code = {
        "analysis.py": "def fit_gumbel(x):\n    return x  # gumbel fit\n",
        "model.R": "fit <- lm(y ~ x)  # rstudioquirk\n",
        "solve.jl": "function solve()  # juliasolver\nend\n",
        "script.m": "x = linspace(0, 1);  % matlabsweep\n",
        "kern.c": "int ckernel(void) { return 0; }\n",
        "kern.cpp": "int cppkernel() { return 0; }\n",
        "kern.h": "int headerdecl(void);\n",
        "lib.rs": "fn rustyfn() {}\n",
        "main.go": "func gopherfunc() {}\n",
        "Main.java": "class JavaThing {}\n",
        "app.js": "function jsthing() {}\n",
        "app.ts": "const tsthing: number = 1;\n",
        "run.sh": "echo shellthing\n",
    }
    for name, text in code.items():
        put(f"code/{name}", text)
    put(
        "page.html",
        "<html><head><title>Station list</title><style>.x{color:red}"
        "</style><script>var scriptsecret = 1;</script></head><body><h1>Buoys</h1>"
        "<p>The ondograph buoy is moored offshore.</p></body></html>",
    )
    rows = "\n".join(f"{i},{i * 0.5},{'site' + str(i)}" for i in range(1000))
    put("table.csv", "depth_m,salinity_psu,station\n" + rows + "\n")
    files["analysis.ipynb"] = write_notebook(
        root / "analysis.ipynb",
        [
            ("markdown", "# Notebook\nExploring the fjordwater dataset."),
            ("code", "import numpy as np\nvalue = np.mean([1, 2])  # nbcodeword"),
        ],
    )
    files["report.pdf"] = write_pdf(
        root / "report.pdf",
        [
            ["Chapter one: the kelpforest survey"],
            ["Chapter two: the abyssopelagic samples"],
        ],
    )
    return files
