"""kanoa desktop: streamed interpretations of scientific figures and tables from local models."""

__version__ = "0.1.0"
APP_ID = "io.github.kanoa.Desktop"
APP_NAME = "kanoa desktop"

# httpx imports its command-line client (rich, pygments and click: ~100 modules, ~0.12 s of
# CPU and ~15 MB) whenever those packages happen to be installed, as in many scientific
# environments. kanoa desktop never runs the httpx command; marking the module absent makes
# httpx fall back to its stub (``httpx.main`` then says the CLI extras are missing).
import sys as _sys  # noqa: E402

_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
del _sys
