#!/usr/bin/env bash
# Fetches the metadata corpus: real photographs from Pillow's source distribution on PyPI and
# their EXIF, IPTC and XMP as read by exiftool (`exiftool -csv`), into target/corpus/metadata.
# Idempotent: does nothing when the photographs and exiftool.csv are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PILLOW_VERSION=11.3.0
OUT=target/corpus/metadata
DOWNLOADS=target/corpus/downloads
# Photographs with camera EXIF, GPS, IPTC keywords and Lightroom/Google XMP.
FILES=(
  xmp_test.jpg ultrahdr.jpg flower.jpg flower2.jpg iptc.jpg empty_gps_ifd.jpg exif_gps.jpg
  rgb.jpg photoshop-200dpi.jpg exif-200dpcm.jpg hopper.jpg pil_sample_rgb.jpg
)

complete() {
  [ -s "$OUT/exiftool.csv" ] || return 1
  for f in "${FILES[@]}"; do
    [ -s "$OUT/images/$f" ] || return 1
  done
}

if complete; then
  echo "corpus-metadata: ${#FILES[@]} photographs and exiftool.csv in $OUT"
  exit 0
fi

if ! command -v exiftool >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq libimage-exiftool-perl
fi

mkdir -p "$OUT/images" "$DOWNLOADS"
SDIST="$DOWNLOADS/pillow-$PILLOW_VERSION.tar.gz"
if [ ! -s "$SDIST" ]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "pillow==$PILLOW_VERSION" -d "$DOWNLOADS"
fi
members=()
for f in "${FILES[@]}"; do
  members+=("pillow-$PILLOW_VERSION/Tests/images/$f")
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$SDIST" -C "$tmp" "${members[@]}"
for f in "${FILES[@]}"; do
  cp "$tmp/pillow-$PILLOW_VERSION/Tests/images/$f" "$OUT/images/$f"
done
# -G: group-prefixed tag names (EXIF:Make), -n: numbers as numbers, -sep '|': list items
# (IPTC:Keywords, XMP history) joined with '|'. File-system and computed tags are left out.
(cd "$OUT/images" && exiftool -q -csv -G -n -sep '|' -EXIF:all -IPTC:all -XMP:all "${FILES[@]}") \
  >"$tmp/exiftool.csv"
mv "$tmp/exiftool.csv" "$OUT/exiftool.csv"
echo "corpus-metadata: ${#FILES[@]} photographs and exiftool.csv in $OUT (pillow $PILLOW_VERSION, exiftool $(exiftool -ver))"
