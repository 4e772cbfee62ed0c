#!/bin/sh
# kanoa desktop @VERSION@ (@ARCH@) for one user, no administrator rights needed.
#
#   sh kanoa-desktop-@VERSION@-@ARCH@.run                 install into ~/.local
#   sh kanoa-desktop-@VERSION@-@ARCH@.run --prefix DIR    install into DIR instead
#   sh kanoa-desktop-@VERSION@-@ARCH@.run --extract DIR   only unpack the bundle into DIR
#   ~/.local/lib/kanoa-desktop/uninstall                  remove it again
#
# Installs the self-contained bundle into PREFIX/lib/kanoa-desktop, the command
# PREFIX/bin/kanoa-desktop, and the launcher, icons and file types ("Open With" for
# figures, tables, PDF and notebooks) into ${XDG_DATA_HOME:-~/.local/share}. Installing
# again replaces the previous version. Uninstalling leaves your history, profiles,
# settings and keychain entries alone. Made by packaging/build_run.py; the payload after
# the last line of this script is the Debian package's data archive (tar, @COMPRESSOR@):
# the same files as the .deb, of which the bundle under usr/lib/kanoa-desktop is used.
set -eu

VERSION="@VERSION@"
PAYLOAD_LINE=@PAYLOAD_LINE@
PAYLOAD_SHA256="@PAYLOAD_SHA256@"

say() { printf '%s\n' "$*"; }
fail() { printf 'kanoa desktop installer: %s\n' "$*" >&2; exit 1; }

prefix="${HOME:?HOME is not set}/.local"
extract_only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || fail "--prefix needs a folder"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --extract) [ $# -ge 2 ] || fail "--extract needs a folder"; extract_only="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
done
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac

[ "$(uname -s)" = Linux ] || fail "this installer is for Linux"
[ "$(uname -m)" = "@ARCH@" ] || fail "this installer is for @ARCH@, this machine is $(uname -m)"
command -v @COMPRESSOR@ >/dev/null 2>&1 || fail "@COMPRESSOR@ is needed to unpack (Debian/Ubuntu: sudo apt install @COMPRESSOR_PACKAGE@)"
command -v tar >/dev/null 2>&1 || fail "tar is needed to unpack"

payload() { tail -n "+$PAYLOAD_LINE" "$0"; }
# The bundle out of the payload, as DIR/kanoa-desktop.
unpack() {
    mkdir -p "$1/.payload"
    payload | @COMPRESSOR@ -dc | tar -x -C "$1/.payload" ./usr/lib/kanoa-desktop
    mv "$1/.payload/usr/lib/kanoa-desktop" "$1/kanoa-desktop"
    rm -rf "$1/.payload"
}
if command -v sha256sum >/dev/null 2>&1; then
    sum="$(payload | sha256sum | cut -d' ' -f1)"
    [ "$sum" = "$PAYLOAD_SHA256" ] || fail "this file is damaged or incomplete (checksum mismatch): download it again"
fi

if [ -n "$extract_only" ]; then
    mkdir -p "$extract_only"
    unpack "$extract_only"
    say "Unpacked kanoa desktop $VERSION into $extract_only/kanoa-desktop"
    exit 0
fi

lib="$prefix/lib/kanoa-desktop"
bin="$prefix/bin"
mkdir -p "$prefix/lib" "$bin"
tmp="$(mktemp -d "$prefix/lib/.kanoa-desktop-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT INT TERM
say "Unpacking kanoa desktop $VERSION ..."
unpack "$tmp"
# The bundle must start on this machine (glibc, CPU) before it replaces anything.
"$tmp/kanoa-desktop/kanoa-desktop" --version >/dev/null 2>&1 \
    || fail "the bundle does not run on this system (it needs glibc @GLIBC@ or newer)"
if [ -e "$lib" ]; then
    say "Replacing the installed version in $lib"
    rm -rf "$lib"
fi
mv "$tmp/kanoa-desktop" "$lib"
cat > "$lib/uninstall" <<'UNINSTALL_SCRIPT'
@UNINSTALL@UNINSTALL_SCRIPT
chmod 755 "$lib/uninstall"
ln -sfn "$lib/kanoa-desktop" "$bin/kanoa-desktop"
"$lib/kanoa-desktop" --desktop-integration install >/dev/null \
    || fail "the launcher could not be installed (the app itself is in $lib)"
say "Installed kanoa desktop $VERSION:"
say "  the app       $lib"
say "  the command   $bin/kanoa-desktop"
say "  the launcher  ${XDG_DATA_HOME:-$HOME/.local/share}/applications/io.github.kanoa.Desktop.desktop"
say "Start it from your desktop's menu or with: $bin/kanoa-desktop"
say "Uninstall with: $lib/uninstall"
exit 0
# The payload follows this line.
