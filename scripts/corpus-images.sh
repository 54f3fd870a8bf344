#!/usr/bin/env bash
# Fetches the image corpus: real photographs and images (JPEG, PNG, GIF, WebP, and
# damaged files) from Pillow's source distribution on PyPI into target/corpus/images.
# Idempotent: does nothing when every file is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PILLOW_VERSION=11.3.0
OUT=target/corpus/images
DOWNLOADS=target/corpus/downloads
FILES=(
  flower.jpg flower2.jpg hopper.jpg hopper_gray.jpg exif-72dpi-int.jpg
  hopper.png flower_thumbnail.png uncompressed_rgb.png transparent.png radial_gradients.png
  hopper.gif transparent.gif test.colors.gif chi.gif
  flower.webp flower2.webp hopper.webp transparent.webp
  broken.png truncated_image.png
)

missing=0
for f in "${FILES[@]}"; do
  [ -s "$OUT/$f" ] || missing=1
done
if [ "$missing" = 0 ]; then
  echo "corpus: ${#FILES[@]} images in $OUT"
  exit 0
fi

mkdir -p "$OUT" "$DOWNLOADS"
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
  cp "$tmp/pillow-$PILLOW_VERSION/Tests/images/$f" "$OUT/$f"
done
echo "corpus: ${#FILES[@]} images in $OUT (from pillow $PILLOW_VERSION)"
