"""Entry script of the frozen build (PyInstaller analyses its imports from here).

``--self-test`` is dispatched here as by ``run_app``, so a bundle can always test
itself, even built from a tree where the window's entry point does not know the flag.

``--desktop-integration install|uninstall`` runs the bundle's copy of
``packaging/install_desktop.py`` with the bundle's own Python (the one-user installer, a
``.run`` file, needs no Python on the machine): the launcher, icons, metainfo and MIME
types for this bundle's executable, in ``$XDG_DATA_HOME``.
"""

from __future__ import annotations

import sys


def desktop_integration(action: str) -> int:
    """Install or remove the launcher for this bundle's executable (frozen builds only)."""
    import runpy
    from pathlib import Path

    bundle = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent))
    script = bundle / "resources" / "install_desktop.py"
    if action == "install":
        argv = ["--exec", str(Path(sys.executable).resolve())]
    elif action == "uninstall":
        argv = ["--uninstall"]
    else:
        print("usage: kanoa-desktop --desktop-integration install|uninstall", file=sys.stderr)
        return 2
    module = runpy.run_path(str(script))
    return module["main"](argv)


def launch() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--desktop-integration"] and getattr(sys, "frozen", False):
        return desktop_integration(args[1] if len(args) > 1 else "")
    if "--self-test" in args:
        from kanoa_desktop.selftest import main as self_test

        return self_test(args)
    from kanoa_desktop.__main__ import main

    return main(args)


if __name__ == "__main__":
    sys.exit(launch())
