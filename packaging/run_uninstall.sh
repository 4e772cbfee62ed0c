#!/bin/sh
# Remove kanoa desktop installed by its .run installer: the launcher, icons and file types,
# the command PREFIX/bin/kanoa-desktop and this folder (PREFIX/lib/kanoa-desktop). Your
# history, profiles, settings and keychain entries are kept; delete ~/.config/kanoa-desktop
# and ~/.local/share/kanoa-desktop yourself to remove them too.
set -eu
lib="$(cd "$(dirname "$0")" && pwd)"
prefix="$(dirname "$(dirname "$lib")")"
[ -x "$lib/kanoa-desktop" ] || { echo "kanoa desktop is not installed in $lib" >&2; exit 1; }
"$lib/kanoa-desktop" --desktop-integration uninstall >/dev/null
link="$prefix/bin/kanoa-desktop"
if [ -L "$link" ] && [ "$(readlink "$link")" = "$lib/kanoa-desktop" ]; then
    rm -f "$link"
fi
rm -rf "$lib"
echo "Removed kanoa desktop from $lib (your history, profiles and keys are kept)."
