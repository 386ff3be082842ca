#!/usr/bin/env bash
# Builds the RPM dist/pgtwin-migrate-<version>-<release>.<arch>.rpm from
# packaging/rpm/pgtwin-migrate.spec and the prebuilt files, for SUSE/RHEL
# clusters. `make rpm` runs it after `make binary man`; rpmbuild is the only
# tool it needs beyond make (on Debian: apt-get install rpm).
#
# The spec's Source0 is made here: dist/rpm/SOURCES/pgtwin-migrate-<version>.tar
# with the executable, the man page and README.md under pgtwin-migrate-<version>/.
# The version (package.json's) goes in with --define pgtwin_version.
#
#   RPM_RELEASE=N       the Release (default 1)
#   RPM_PAYLOAD=...     rpmbuild's _binary_payload, e.g. w1.gzdio (default: rpmbuild's)
#
# Prints the path of the package it wrote.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

die() { printf 'make-rpm: error: %s\n' "$*" >&2; exit 1; }

command -v rpmbuild >/dev/null || die "rpmbuild not found (on Debian: apt-get install rpm)"
[ -f README.md ] || die "README.md missing: the package ships it"

# Brings the executable and the man page up to date when they are not.
make --no-print-directory binary man >&2

VERSION=$(node -p 'require("./package.json").version')
RELEASE=${RPM_RELEASE:-1}
TOP="$REPO/dist/rpm"
rm -rf "$TOP"
mkdir -p "$TOP/SOURCES" "$TOP/BUILD" "$TOP/BUILDROOT" "$TOP/RPMS" "$TOP/SPECS" "$TOP/SRPMS" "$TOP/tmp"

SRC="$TOP/tmp/pgtwin-migrate-$VERSION"
mkdir -p "$SRC"
cp dist/pgtwin-migrate "$SRC/pgtwin-migrate"
cp dist/pgtwin-migrate.7 "$SRC/pgtwin-migrate.7"
cp README.md "$SRC/README.md"
# Uncompressed: the executable is most of it and the RPM payload is compressed anyway.
tar -C "$TOP/tmp" --owner=0 --group=0 --numeric-owner -cf "$TOP/SOURCES/pgtwin-migrate-$VERSION.tar" "pgtwin-migrate-$VERSION"
rm -rf "$SRC"

defs=(
  --define "_topdir $TOP"
  --define "_tmppath $TOP/tmp"
  --define "pgtwin_version $VERSION"
  --define "pgtwin_release $RELEASE"
)
[ -n "${RPM_PAYLOAD:-}" ] && defs+=(--define "_binary_payload $RPM_PAYLOAD")
rpmbuild -bb "${defs[@]}" packaging/rpm/pgtwin-migrate.spec >&2

ARCH=$(rpm --eval '%{_arch}')
BUILT="$TOP/RPMS/$ARCH/pgtwin-migrate-$VERSION-$RELEASE.$ARCH.rpm"
[ -f "$BUILT" ] || BUILT=$(find "$TOP/RPMS" -name "pgtwin-migrate-$VERSION-$RELEASE*.rpm" | head -1)
[ -n "$BUILT" ] && [ -f "$BUILT" ] || die "rpmbuild wrote no package under $TOP/RPMS"
OUT="dist/$(basename "$BUILT")"
mv -f "$BUILT" "$OUT"
rm -rf "$TOP"
echo "$OUT"
