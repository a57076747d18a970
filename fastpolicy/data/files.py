"""Image file lists: an ImageNet-layout folder or a ``path label`` file, checked before training.

A bad file never becomes a silent wrong label: :func:`check_files` finds missing,
empty, non-image and truncated files (``verify="header"``, a few bytes per file) or
every file PIL cannot decode (``verify="decode"``), and either raises
:class:`BadImageError` naming them or, with ``on_bad="skip"``, drops and counts them.
CMYK and grayscale JPEGs and PNGs named ``.jpg`` are valid: the decoder makes RGB of them.
The header check also reads each image's dimensions (without decoding it) and refuses
images of more than ``max_pixels`` pixels (default PIL's ``MAX_IMAGE_PIXELS``), which would
decode to gigabytes (a "decompression bomb").

Folder scans follow symbolic links but list every real file once (a link loop, or a link
to a folder already scanned, adds nothing), refuse file names that are not valid UTF-8
(DALI cannot open them), and count the non-image files they ignore.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
"""File name endings (case-insensitive) taken as images when scanning a folder."""

_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"RIFF", "webp"),
    (b"P5", "pnm"),
    (b"P6", "pnm"),
)

SKIP_HINT = "pass --on-bad skip (on_bad='skip' in Python)"
"""How to drop bad files, in both spellings: a run's flag, the loader's argument. ``on_bad='skip'``
decodes every file once (:class:`~fastpolicy.loader.dataset.FileDataset`), whatever ``verify`` says."""


DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's ``Image.MAX_IMAGE_PIXELS`` (about 1/4 GiB of 24-bit pixels): the default pixel limit."""


def display_path(path: str) -> str:
    """``path`` printable: bytes that are not UTF-8 (kept by Python as surrogates) as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class BadImageError(UserError, ValueError):
    """Raised for files that cannot be read as images; ``bad`` lists ``(path, reason)``."""

    def __init__(self, bad: list[tuple[str, str]], hint: str = ""):
        self.bad = list(bad)
        hint = f" ({hint})" if hint else ""
        if len(self.bad) == 1:
            path, reason = self.bad[0]
            super().__init__(f"unreadable image file {display_path(path)}: {reason}{hint}")
            return
        shown = "\n".join(f"  {display_path(path)}: {reason}" for path, reason in self.bad[:20])
        more = f"\n  … and {len(self.bad) - 20} more" if len(self.bad) > 20 else ""
        super().__init__(f"{len(self.bad)} unreadable image files{hint}:\n{shown}{more}")


@dataclass
class ImageList:
    """Labelled image files.

    Attributes:
        files: absolute paths, one per sample.
        labels: int64[N] class index of each file.
        classes: class names; ``labels`` index into it.
        skipped: ``(path, reason)`` of files dropped by ``on_bad="skip"``.
        ignored: files of a scanned folder that are not images by name (not listed).
        duplicates: ``(path, first path)``: links to a file already listed (not listed again).
    """

    files: list[str]
    labels: np.ndarray
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.files)


def _plugin(kind: str):
    """PIL's image class for a signature ``kind``: constructing it reads the header only."""
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, PpmImagePlugin, TiffImagePlugin

    classes = {
        "jpeg": JpegImagePlugin.JpegImageFile,
        "png": PngImagePlugin.PngImageFile,
        "bmp": BmpImagePlugin.BmpImageFile,
        "tiff": TiffImagePlugin.TiffImageFile,
        "pnm": PpmImagePlugin.PpmImageFile,
    }
    if kind == "webp":
        from PIL import WebPImagePlugin

        return WebPImagePlugin.WebPImageFile
    return classes[kind]


def image_size(path: str, kind: str) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, without decoding its pixels (and
    without PIL's own decompression-bomb check, so any size is reported)."""
    image = _plugin(kind)(path)
    try:
        return image.size
    finally:
        image.close()


def header_problem(path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> str | None:
    """Why ``path`` cannot be an image, from its first and last bytes and its header; None
    if it may be one.

    Detects a missing or empty file, an unknown signature, a JPEG without its
    end-of-image marker (truncated), an unreadable header, and more than ``max_pixels``
    pixels (None: no limit). Corruption inside the data needs ``verify="decode"``.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as handle:
            head = handle.read(16)
            handle.seek(max(size - 64, 0))
            tail = handle.read()
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    kind = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if kind is None:
        return "not an image (unknown file signature)"
    if kind == "webp" and head[8:12] != b"WEBP":
        return "not an image (RIFF but not WebP)"
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    try:
        width, height = image_size(path, kind)
    except Exception as error:  # PIL raises many types for bad headers
        return f"unreadable {kind} header: {error}"
    if max_pixels is not None and width * height > max_pixels:
        return (
            f"{width}×{height} = {width * height} pixels, more than the limit of {max_pixels} "
            "(it would decode to gigabytes; raise max_pixels / --max-pixels if it is meant)"
        )
    return None


def decode_problem(path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> str | None:
    """Why PIL cannot decode ``path`` completely (after :func:`header_problem`); None if it decodes."""
    problem = header_problem(path, max_pixels)
    if problem is not None:
        return problem
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Image.DecompressionBombError:
        return None  # within the caller's max_pixels, which may exceed PIL's own limit
    except Exception as error:  # PIL raises many types for bad data
        return f"cannot decode: {error}"
    return None


VERIFY = {"header": header_problem, "decode": decode_problem, "none": None}
"""``verify=`` choices: how hard :func:`check_files` looks at each file."""


def check_files(
    images: ImageList,
    verify: str = "header",
    on_bad: str = "raise",
    workers: int = 8,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ImageList:
    """Check every file of ``images``; raise naming the bad ones, or drop and count them.

    Args:
        verify: ``"header"`` (signature, JPEG end marker, dimensions), ``"decode"`` (also a
            full PIL decode) or ``"none"``.
        on_bad: ``"raise"`` (:class:`BadImageError`) or ``"skip"`` (drop; listed in
            ``ImageList.skipped``).
        workers: threads reading files.
        max_pixels: refuse images with more pixels (None: no limit).

    Returns:
        ``images`` itself when all files pass, else a new :class:`ImageList` without the bad files.
    """
    if verify not in VERIFY:
        raise ValueError(f"verify must be one of {sorted(VERIFY)}, got {verify!r}")
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels}")
    checker = VERIFY[verify]
    if checker is None:
        return images
    check = functools.partial(checker, max_pixels=max_pixels)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        problems = list(pool.map(check, images.files, chunksize=256))
    bad = [(path, problem) for path, problem in zip(images.files, problems) if problem is not None]
    if not bad:
        return images
    if on_bad == "raise":
        raise BadImageError(bad, hint=f"{SKIP_HINT} to drop and count them instead")
    keep = [i for i, problem in enumerate(problems) if problem is None]
    if not keep:
        raise BadImageError(bad, hint="no readable image is left")
    return ImageList(
        [images.files[i] for i in keep],
        images.labels[keep],
        images.classes,
        skipped=images.skipped + bad,
        ignored=images.ignored,
        duplicates=images.duplicates,
    )


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def scan_folder(root: str, on_bad: str = "raise") -> ImageList:
    """ImageNet layout: ``root/<class>/<image>``; classes are the sub-folders, sorted by name.

    Files whose names do not end in :data:`IMAGE_EXTENSIONS` are ignored (like
    torchvision's ``ImageFolder``) and listed in ``ImageList.ignored``, and so are hidden
    folders and files (names starting with ``.``: ``.ipynb_checkpoints``, ``.git``, macOS's
    ``._photo.jpg``), which would otherwise become a class or an unreadable image. Symbolic links are
    followed, but every real file is listed once and every real folder entered once:
    a link loop adds nothing, and a second link to a file already listed (in any class)
    is recorded in ``ImageList.duplicates`` instead. A file or class name that is not
    valid UTF-8 raises :class:`BadImageError` naming it (``on_bad="skip"``: dropped and
    listed in ``skipped``). An empty class folder raises (naming it) unless
    ``on_bad="skip"``, which keeps its class index, so labels stay those of the full layout.
    """
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {display_path(root)!r} does not exist")
    root = os.path.abspath(root)
    hidden = sorted(e.path for e in os.scandir(root) if e.name.startswith(".") and e.is_dir())
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"{display_path(root)!r} has no class sub-folders (expected root/<class>/<image>)")
    if set(classes) <= {"train", "val", "test"} and set(classes) & {"train", "val"}:
        # a dataset root, not a split: its splits would be read as two classes
        raise ValueError(
            f"{display_path(root)!r} holds train/ and val/: it is a dataset root, not a folder of classes; "
            f"pass {display_path(os.path.join(root, 'train'))!r} (or val/)"
        )
    bad_names = [
        (os.path.join(root, name), "class folder name is not valid UTF-8; rename it")
        for name in classes
        if not _utf8(name)
    ]
    if bad_names:
        raise BadImageError(bad_names)
    files, labels, skipped, duplicates = [], [], [], []
    ignored = list(hidden)  # hidden folders (.ipynb_checkpoints, .git …) are no classes
    listed: dict[str, str] = {}  # real path → the path it is listed under
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        entered: set[str] = set()
        found = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            real_dir = os.path.realpath(dirpath)
            if real_dir in entered:  # a link back to a folder of this class: a loop, or listed already
                dirnames[:] = []
                continue
            entered.add(real_dir)
            ignored += [os.path.join(dirpath, d) for d in dirnames if d.startswith(".")]
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                if filename.startswith(".") or not filename.lower().endswith(IMAGE_EXTENSIONS):
                    ignored.append(path)
                elif not _utf8(path):
                    skipped.append((path, "file name is not valid UTF-8 (DALI cannot open it); rename it"))
                else:
                    real = os.path.realpath(path)
                    if real in listed:
                        duplicates.append((path, listed[real]))
                    else:
                        listed[real] = path
                        found.append(path)
        if not found:
            if on_bad != "skip":
                raise ValueError(
                    f"class folder {display_path(folder)!r} holds no image files ({SKIP_HINT} to keep going without it)"
                )
            skipped.append((folder, "empty class folder"))
        files += found
        labels += [label] * len(found)
    names = [(path, reason) for path, reason in skipped if reason.startswith("file name")]
    if names and on_bad != "skip":
        raise BadImageError(names, hint=f"rename them, or {SKIP_HINT} to drop them")
    if not files:
        raise ValueError(f"no image files under {display_path(root)!r}")
    return ImageList(files, np.array(labels), classes, skipped=skipped, ignored=ignored, duplicates=duplicates)


def describe_scan(images: ImageList) -> str | None:
    """One line on what a folder scan left out (ignored non-images, duplicate links, skipped
    files), or None if it left out nothing."""
    parts = []
    if images.ignored:
        parts.append(f"ignored {len(images.ignored)} non-image file(s) (e.g. {display_path(images.ignored[0])})")
    if images.duplicates:
        path, first = images.duplicates[0]
        parts.append(
            f"listed {len(images.duplicates)} linked duplicate(s) once (e.g. {display_path(path)} → "
            f"{display_path(first)})"
        )
    if images.skipped:
        path, reason = images.skipped[0]
        parts.append(f"skipped {len(images.skipped)} bad file(s) (e.g. {display_path(path)}: {reason})")
    return "; ".join(parts) or None


def read_file_list(path: str, root: str | None = None) -> ImageList:
    """A ``path label`` file (one sample per line, ``#`` comments and blank lines ignored).

    Relative paths are taken from ``root`` (default: the list file's folder). Labels are
    non-negative integers; ``classes`` are their string forms ``"0" … str(max)``. A
    malformed line raises naming the list file and line number.
    """
    base = root if root is not None else os.path.dirname(os.path.abspath(path))
    files, labels = [], []
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = raw.count(b"\n", 0, error.start) + 1
        raise BadImageError([(path, f"line {bad_line} is not valid UTF-8 text")]) from None
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{number}: expected '<path> <label>', got {entry!r}")
        files.append(os.path.normpath(os.path.join(base, parts[0])))
        labels.append(int(parts[1]))
    if not files:
        raise ValueError(f"file list {path!r} names no files")
    return ImageList(files, np.array(labels), [str(c) for c in range(max(labels) + 1)])
