#!/usr/bin/env bash
# Builds the Debian package dist/pgtwin-migrate_<version>_<arch>.deb with
# dpkg-deb alone (no debhelper, no network): a staging tree made by
# `make install DESTDIR=...` (the agent in /usr/lib/ocf/resource.d/heartbeat,
# the man page, gzipped here), the README and copyright in
# /usr/share/doc/pgtwin-migrate, and DEBIAN/control from
# packaging/debian/control.in. `make deb` runs it after `make binary man`.
#
# The version is package.json's; the architecture is dpkg's own (the
# executable is the build host's Node.js binary with the agent injected).
#
#   DEB_COMPRESS=xz|gzip|zstd|none   payload compressor (default: dpkg-deb's, xz)
#   DEB_COMPRESS_LEVEL=N             its level (default: dpkg-deb's)
#
# Prints the path of the package it wrote.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

die() { printf 'make-deb: error: %s\n' "$*" >&2; exit 1; }

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
[ -f README.md ] || die "README.md missing: the package ships it in /usr/share/doc/pgtwin-migrate"

VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
OCF_DIR=/usr/lib/ocf/resource.d/heartbeat
MAN_DIR=/usr/share/man/man7
DOC_DIR=/usr/share/doc/pgtwin-migrate
OUT="dist/pgtwin-migrate_${VERSION}_${ARCH}.deb"

# Under dist/ (git-ignored), one per run, removed whatever happens.
mkdir -p dist
ROOT=$(mktemp -d "$REPO/dist/.deb-root.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
chmod 0755 "$ROOT"

# The agent and the man page, exactly as `make install` puts them; make
# rebuilds either when it is out of date.
make --no-print-directory install DESTDIR="$ROOT" OCF_DIR="$OCF_DIR" MAN_DIR="$MAN_DIR" >&2
[ -x "$ROOT$OCF_DIR/pgtwin-migrate" ] || die "make install did not install $OCF_DIR/pgtwin-migrate"
[ -f "$ROOT$MAN_DIR/pgtwin-migrate.7" ] || die "make install did not install $MAN_DIR/pgtwin-migrate.7"
gzip -9n "$ROOT$MAN_DIR/pgtwin-migrate.7"

install -d -m 0755 "$ROOT$DOC_DIR"
gzip -9n -c README.md >"$ROOT$DOC_DIR/README.md.gz"
chmod 0644 "$ROOT$DOC_DIR/README.md.gz"
install -m 0644 packaging/debian/copyright "$ROOT$DOC_DIR/copyright"

install -d -m 0755 "$ROOT/DEBIAN"
SIZE=$(du -sk --apparent-size "$ROOT/usr" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$SIZE/" \
  packaging/debian/control.in >"$ROOT/DEBIAN/control"
grep -q "@[A-Z_]*@" "$ROOT/DEBIAN/control" && die "packaging/debian/control.in has a placeholder this script does not fill"
(cd "$ROOT" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/md5sums"

opts=(--root-owner-group)
[ -n "${DEB_COMPRESS:-}" ] && opts+=("-Z$DEB_COMPRESS")
[ -n "${DEB_COMPRESS_LEVEL:-}" ] && opts+=("-z$DEB_COMPRESS_LEVEL")
rm -f "$OUT"
dpkg-deb "${opts[@]}" --build "$ROOT" "$OUT" >&2
echo "$OUT"
