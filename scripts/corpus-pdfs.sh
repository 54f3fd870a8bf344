#!/usr/bin/env bash
# Fetches the PDF corpus: real PDFs (text, a JPEG, scanned pages with OCR text, forms,
# several scripts, landscape and tiny pages, and a password-protected one that cannot be read) from pypdf's source distribution on PyPI into
# target/corpus/pdfs. Idempotent: does nothing when every file is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYPDF_VERSION=7.1.1
OUT=target/corpus/pdfs
DOWNLOADS=target/corpus/downloads
# Paths under pypdf-$PYPDF_VERSION/resources; each lands in $OUT under its base name.
FILES=(
  crazyones.pdf crazyones.txt jpeg.pdf imagemagick-images.pdf pdflatex-outline.pdf
  libreoffice-form.pdf AutoCad_Simple.pdf multilang.pdf Seige_of_Vicksburg_Sample_OCR.pdf
  encrypted-file.pdf
)

complete() {
  for f in "${FILES[@]}"; do
    [ -s "$OUT/$(basename "$f")" ] || return 1
  done
}

if complete; then
  echo "corpus-pdfs: ${#FILES[@]} files in $OUT"
  exit 0
fi

mkdir -p "$OUT" "$DOWNLOADS"
SDIST="$DOWNLOADS/pypdf-$PYPDF_VERSION.tar.gz"
if [ ! -s "$SDIST" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "pypdf==$PYPDF_VERSION" -d "$DOWNLOADS"
fi
members=()
for f in "${FILES[@]}"; do
  members+=("pypdf-$PYPDF_VERSION/resources/$f")
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$SDIST" -C "$tmp" "${members[@]}"
for f in "${FILES[@]}"; do
  cp "$tmp/pypdf-$PYPDF_VERSION/resources/$f" "$OUT/$(basename "$f")"
done
echo "corpus-pdfs: ${#FILES[@]} files in $OUT (from pypdf $PYPDF_VERSION)"
