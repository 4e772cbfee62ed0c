"""Entry script of the frozen build (PyInstaller analyses its imports from here).

``--self-test`` is dispatched here as by ``run_app``, so a bundle can always test
itself, even built from a tree where the window's entry point does not know the flag.
"""

from __future__ import annotations

import sys


def launch() -> int:
    args = sys.argv[1:]
    if "--self-test" in args:
        from kanoa_desktop.selftest import main as self_test

        return self_test(args)
    from kanoa_desktop.__main__ import main

    return main(args)


if __name__ == "__main__":
    sys.exit(launch())
