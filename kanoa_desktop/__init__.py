"""kanoa desktop: streamed interpretations of scientific figures and tables from local models."""

# The one version number: pyproject.toml reads it (dynamic version), and Help > About,
# --version, the self-test, exported reproducibility blocks, the .deb and .run names use it.
# Releasing: change it here, add its section to CHANGELOG.md and a <release> to the
# AppStream metainfo (tests/packaging/test_version.py checks they agree).
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
