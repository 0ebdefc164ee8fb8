#!/usr/bin/env bash
# Rebuild eval/collections/pgdocs/docs/ from Debian's postgresql-doc-15 package.
#
# The collection is a rule-chosen subset of the PostgreSQL 15 HTML manual (1,176 pages in all):
# every page listed in the table of contents of Part III "Server Administration" (admin.html)
# and of Part VI "Reference" (reference.html: SQL commands, client and server applications),
# plus those two part pages: 350 files as of 15.20-0+deb12u1. Nothing is picked by hand.
#
# Needs: apt-get (after `apt-get update`), dpkg-deb, python3. Installs nothing system-wide.
# Usage: bash eval/collections/pgdocs/fetch.sh
set -euo pipefail

PKG=postgresql-doc-15
WRITTEN_AGAINST=15.20-0+deb12u1   # the version the questions were written and checked against
HTML=usr/share/doc/postgresql-doc-15/html
PARTS="admin.html reference.html"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/docs"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"  # so apt can drop privileges to _apt while downloading

( cd "$tmp" && apt-get download "$PKG" >/dev/null )
deb="$(ls "$tmp"/"$PKG"_*.deb)"
version="$(dpkg-deb -f "$deb" Version)"
if [ "$version" != "$WRITTEN_AGAINST" ]; then
    echo "WARNING: fetched $PKG $version, but the questions were written against $WRITTEN_AGAINST;" >&2
    echo "WARNING: run eval/collections/check_evidence.py to see whether every evidence span still holds." >&2
fi
dpkg-deb -x "$deb" "$tmp/x"

rm -rf "$dest"
mkdir -p "$dest"
python3 - "$tmp/x/$HTML" "$dest" $PARTS <<'PY'
import re, shutil, sys
from pathlib import Path

src, dest, parts = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
chosen = set(parts)
for part in parts:
    page = (src / part).read_text(encoding="utf-8")
    toc = re.search(r'<div class="toc">(.*?)</div>', page, re.S)
    if not toc:
        sys.exit(f"no table of contents in {part}")
    chosen |= set(re.findall(r'href="([^"#]+\.html)', toc.group(1)))
for name in sorted(chosen):
    shutil.copy2(src / name, dest / name)
print(f"{len(chosen)} HTML files -> {dest}")
PY
echo "$PKG $version"
