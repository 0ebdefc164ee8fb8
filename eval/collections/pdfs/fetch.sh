#!/usr/bin/env bash
# Rebuild eval/collections/pdfs/docs/ from four Debian documentation packages (194 pages in all).
# Each PDF is a real manual with tables; all have a text layer (pdftotext reads them).
#
# Needs: apt-get (after `apt-get update`), dpkg-deb. Installs nothing system-wide.
# texlive-latex-recommended-doc is a ~50 MB download; only booktabs.pdf and xcolor.pdf are kept.
# Usage: bash eval/collections/pdfs/fetch.sh
set -euo pipefail

# package | version the questions were written against | path inside the package | name in docs/
FILES=(
  "libtasn1-doc|4.19.0-2+deb12u1|usr/share/doc/libtasn1-doc/libtasn1.pdf|libtasn1.pdf"
  "glpk-doc|5.0-1|usr/share/doc/glpk-doc/gmpl.pdf|gmpl.pdf"
  "texlive-latex-recommended-doc|2022.20230122-3|usr/share/doc/texlive-doc/latex/booktabs/booktabs.pdf|booktabs.pdf"
  "texlive-latex-recommended-doc|2022.20230122-3|usr/share/doc/texlive-doc/latex/xcolor/xcolor.pdf|xcolor.pdf"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/docs"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"  # so apt can drop privileges to _apt while downloading

rm -rf "$dest"
mkdir -p "$dest"
for entry in "${FILES[@]}"; do
    IFS='|' read -r pkg want path name <<<"$entry"
    if [ ! -d "$tmp/$pkg" ]; then
        mkdir -p "$tmp/$pkg" && chmod 777 "$tmp/$pkg"
        ( cd "$tmp/$pkg" && apt-get download "$pkg" >/dev/null )
        dpkg-deb -x "$(ls "$tmp/$pkg"/"$pkg"_*.deb)" "$tmp/$pkg/x"
    fi
    version="$(dpkg-deb -f "$(ls "$tmp/$pkg"/"$pkg"_*.deb)" Version)"
    if [ "$version" != "$want" ]; then
        echo "WARNING: fetched $pkg $version, but the questions were written against $want;" >&2
        echo "WARNING: run eval/collections/check_evidence.py to see whether every evidence span still holds." >&2
    fi
    cp "$tmp/$pkg/x/$path" "$dest/$name"
    echo "$name <- $pkg $version"
done
