"""Files a local web page may show: image paths kept inside the folders given, and thumbnails.

Every refusal is a :class:`BadInput` (a :class:`~data.errors.UserError`) carrying the HTTP
status a server answers with, and a message that says what to change. Any server of the
project (the tagging service, the retrieval explorer) reads images through these.

- :func:`resolve_inside`: a name relative to a folder, refused when absolute, when it has a
  ``..`` part, or when it resolves (symlinks followed) outside the folder.
- :func:`find_image`: the file of an image id in a list of folders, through :func:`resolve_inside`.
- :func:`thumbnail`: a small JPEG of an image file, its header's pixel count checked before
  any pixel is decoded.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image, UnidentifiedImageError

from data.errors import UserError

MAX_PIXELS = 40_000_000            # 40 megapixels: far above any phone photo, far below a bomb
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
FORMATS = "JPEG, PNG, WebP, GIF or BMP"


class BadInput(UserError):
    """A request the service refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, what: str, why: str | None = None, fix: str | None = None):
        self.status = status
        super().__init__(what, why, fix)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} KB"


def check_size(n: int, max_bytes: int, what: str = "the upload") -> None:
    if n > max_bytes:
        raise BadInput(413, what, f"it is {_megabytes(n)}, over the limit of {_megabytes(max_bytes)}",
                       "send a smaller photo (the limit is the server's --max-upload-mb)")


UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError)
"""What PIL raises for an image file that is cut short or corrupt."""


def truncated(what: str, e: Exception) -> BadInput:
    """The 422 for an image that PIL could not read whole (``e``: what it raised)."""
    return BadInput(422, what, f"it is truncated or corrupt ({e})",
                    "send the whole file (the upload may have been cut short)")


def _open_checked(fp, max_pixels: int, what: str) -> Image.Image:
    """``Image.open`` with the pixel limit checked on the header, before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\((\d+) pixels\)", str(e))                    # PIL refused it before we could
        declared = f"{int(n.group(1)) / 1e6:,.0f} megapixels" if n else "more pixels than PIL will open"
        raise BadInput(413, what, f"it declares {declared}, over the limit of {max_pixels / 1e6:.0f} megapixels "
                       "(a decompression bomb?)", "send a smaller photo") from None
    except UnidentifiedImageError:
        raise BadInput(415, what, "it is not an image this service can read",
                       f"send a {FORMATS} photo") from None
    except UNDECODABLE as e:                                            # cut inside its header
        raise truncated(what, e) from None
    w, h = im.size
    if w * h > max_pixels:
        raise BadInput(413, what, f"it declares {w} x {h} pixels ({w * h / 1e6:,.0f} megapixels), over the limit "
                       f"of {max_pixels / 1e6:.0f} megapixels", "send a smaller photo")
    if w == 0 or h == 0:
        raise BadInput(422, what, f"it declares {w} x {h} pixels", "send a photo with pixels in it")
    return im


def resolve_inside(root: str | os.PathLike, name: str, what: str = "image") -> Path:
    """``root/name`` when it stays inside ``root`` once every symlink is followed.

    Refuses (403) an absolute ``name``, a ``..`` part and a path leading out through a
    symlink; 404 when the file does not exist."""
    if not isinstance(name, str) or not name.strip():
        raise BadInput(422, what, "the path is empty", "name a file inside the images folder")
    if "\x00" in name:
        raise BadInput(422, what, "the path holds a NUL character", "name a file inside the images folder")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise BadInput(403, f"{what} {name!r}", "absolute paths are refused",
                       "give a path relative to the images folder")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise BadInput(403, f"{what} {name!r}", "a '..' part leaves the images folder",
                       "give a path inside the images folder")
    base = Path(os.path.realpath(root))
    path = Path(os.path.realpath(os.path.join(base, name)))
    if not path.is_relative_to(base):
        raise BadInput(403, f"{what} {name!r}", "it leads outside the images folder (through a symlink)",
                       "give a file that lies inside the images folder")
    if not path.is_file():
        raise BadInput(404, f"{what} {name!r}", "there is no such file in the images folder",
                       "give the name of a file inside it (or upload the photo)")
    return path


def find_image(folders: list[Path], image_id: str) -> Path:
    """The file of ``image_id`` (a file-name stem, the index's convention) in the first of
    ``folders`` holding one, kept inside that folder by :func:`resolve_inside`."""
    if not image_id or "/" in image_id or "\\" in image_id or image_id in (".", "..") or "\x00" in image_id:
        raise BadInput(404, f"image {image_id!r}", "an image id is a file name without folders",
                       "use an id the page lists")
    for folder in folders:
        for name in (image_id, *(image_id + s for s in IMAGE_SUFFIXES)):
            if (folder / name).is_file() or (folder / name).is_symlink():
                path = resolve_inside(folder, name)
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    return path
    raise BadInput(404, f"image {image_id!r}", "it is in none of the image folders of the runs",
                   "use an id the page lists")


def thumbnail(path: Path, side: int = 128, max_pixels: int = MAX_PIXELS) -> bytes:
    """A JPEG of at most ``side`` x ``side`` pixels of the image at ``path``."""
    with open(path, "rb") as f:
        im = _open_checked(f, max_pixels, f"image {path.name}")
        try:
            im.draft("RGB", (side, side))
            im = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as e:
            raise BadInput(422, f"image {path.name}", f"it cannot be decoded ({e})", "replace the file") from None
    im.thumbnail((side, side))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()
