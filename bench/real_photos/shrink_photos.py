"""Reduce a folder of source photos to the benchmark's size, keeping what a camera wrote.

    python bench/real_photos/shrink_photos.py SOURCE_DIR OUT_DIR [--long-side 800] [--names ...]

Each photo is downscaled (area filter) to LONG_SIDE pixels on its long side and saved as JPEG
(quality 90). Its EXIF is kept, with FocalPlaneX/YResolution (pixels per unit of sensor) scaled
by the same factor: without that, a downscaled photo's EXIF would claim a focal length in
pixels of the full-size photo, and the backend would read a field of view too narrow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import ExifTags, Image

FOCAL_PLANE_TAGS = (ExifTags.Base.FocalPlaneXResolution, ExifTags.Base.FocalPlaneYResolution)


def shrink(source: Path, target: Path, long_side: int) -> None:
    with Image.open(source) as image:
        exif = image.getexif()
        factor = min(1.0, long_side / max(image.size))
        size = (round(image.size[0] * factor), round(image.size[1] * factor))
        small = image.convert("RGB").resize(size, Image.Resampling.BOX)
    details = exif.get_ifd(ExifTags.IFD.Exif)
    for tag in FOCAL_PLANE_TAGS:
        if tag in details:
            details[tag] = float(details[tag]) * factor
    exif.pop(ExifTags.Base.Orientation, None)  # the pixels are written as shown
    small.save(target, format="JPEG", quality=90, exif=exif.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--long-side", type=int, default=800)
    parser.add_argument("--names", nargs="*", help="file names to take (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.names or sorted(p.name for p in args.source.iterdir() if p.is_file())
    for name in names:
        shrink(args.source / name, args.out / (Path(name).stem + ".jpg"), args.long_side)


if __name__ == "__main__":
    main()
