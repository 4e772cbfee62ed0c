"""A virtual X screen (Xvfb) whose pixels can be read from outside, for the install test
and the installed-app start-up bench.

Xvfb's ``-fbdir`` keeps the screen's frame buffer in a file (XWD format), so a screenshot
is a read of that file: no X client, no screenshot tool, nothing inside the app under test.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


class XScreen:
    """``with XScreen(1280, 800) as x: x.display, x.pixels(), x.save_png(path)``."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.width, self.height = width, height
        self.dir = Path(tempfile.mkdtemp(prefix="kanoa-xscreen-"))
        self.proc: subprocess.Popen | None = None
        self.display = ""

    def __enter__(self) -> XScreen:
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise RuntimeError("Xvfb is not installed (Debian: apt-get install xvfb)")
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [xvfb, "-displayfd", str(write_fd), "-screen", "0",
             f"{self.width}x{self.height}x24", "-fbdir", str(self.dir), "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write_fd)
        with os.fdopen(read_fd) as r:
            number = r.readline().strip()
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pixels(self) -> np.ndarray:
        """The screen now, as an (height, width, 3) uint8 RGB array."""
        return read_xwd((self.dir / "Xvfb_screen0").read_bytes())

    def save_png(self, path: Path) -> Path:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.pixels()).save(path)
        return path


def read_xwd(data: bytes) -> np.ndarray:
    """Decode a 24/32-bit TrueColor ZPixmap XWD image (what Xvfb writes) to RGB."""
    fields = struct.unpack_from(">25I", data, 0)
    header_size, _version, pixmap_format, depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14:17]
    ncolors = fields[19]
    if pixmap_format != 2 or bits_per_pixel != 32 or depth < 24:
        raise ValueError(f"unsupported XWD: format {pixmap_format}, {bits_per_pixel} bpp")
    start = header_size + 12 * ncolors
    dtype = "<u4" if byte_order == 0 else ">u4"
    rows = np.frombuffer(data, dtype=dtype, count=height * bytes_per_line // 4, offset=start)
    px = rows.reshape(height, bytes_per_line // 4)[:, :width]

    def channel(mask: int) -> np.ndarray:
        shift = (mask & -mask).bit_length() - 1
        return ((px & mask) >> shift).astype(np.uint8)

    return np.dstack([channel(red_mask), channel(green_mask), channel(blue_mask)])


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
