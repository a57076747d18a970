"""Image file lists: an ImageNet-layout folder or a ``path label`` file, checked before training.

A bad file never becomes a silent wrong label: :func:`check_files` finds missing,
empty, non-image and truncated files (``verify="header"``, a few bytes per file) or
every file PIL cannot decode (``verify="decode"``), and either raises
:class:`BadImageError` naming them or, with ``on_bad="skip"``, drops and counts them.
CMYK and grayscale JPEGs and PNGs named ``.jpg`` are valid: the decoder makes RGB of them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
"""File name endings (case-insensitive) taken as images when scanning a folder."""

_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"),
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"RIFF", "webp"),
    (b"P5", "pnm"), (b"P6", "pnm"),
)


class BadImageError(ValueError):
    """Raised for files that cannot be read as images; ``bad`` lists ``(path, reason)``."""

    def __init__(self, bad: list[tuple[str, str]], hint: str = ""):
        self.bad = list(bad)
        shown = "\n".join(f"  {path}: {reason}" for path, reason in self.bad[:20])
        more = f"\n  … and {len(self.bad) - 20} more" if len(self.bad) > 20 else ""
        super().__init__(f"{len(self.bad)} unreadable image file(s):\n{shown}{more}" + (f"\n{hint}" if hint else ""))


@dataclass
class ImageList:
    """Labelled image files.

    Attributes:
        files: absolute paths, one per sample.
        labels: int64[N] class index of each file.
        classes: class names; ``labels`` index into it.
        skipped: ``(path, reason)`` of files dropped by ``on_bad="skip"``.
    """

    files: list[str]
    labels: np.ndarray
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.files)


def header_problem(path: str) -> str | None:
    """Why ``path`` cannot be an image, from its first and last bytes; None if it may be one.

    Detects a missing or empty file, an unknown signature, and a JPEG without its
    end-of-image marker (truncated). Corruption inside the data needs ``verify="decode"``.
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
    return None


def decode_problem(path: str) -> str | None:
    """Why PIL cannot decode ``path`` completely; None if it decodes."""
    problem = header_problem(path)
    if problem is not None:
        return problem
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # PIL raises many types for bad data
        return f"cannot decode: {error}"
    return None


VERIFY = {"header": header_problem, "decode": decode_problem, "none": None}
"""``verify=`` choices: how hard :func:`check_files` looks at each file."""


def check_files(images: ImageList, verify: str = "header", on_bad: str = "raise", workers: int = 8) -> ImageList:
    """Check every file of ``images``; raise naming the bad ones, or drop and count them.

    Args:
        verify: ``"header"`` (signature and JPEG end marker), ``"decode"`` (full PIL
            decode) or ``"none"``.
        on_bad: ``"raise"`` (:class:`BadImageError`) or ``"skip"`` (drop; listed in
            ``ImageList.skipped``).
        workers: threads reading files.

    Returns:
        ``images`` itself when all files pass, else a new :class:`ImageList` without the bad files.
    """
    if verify not in VERIFY:
        raise ValueError(f"verify must be one of {sorted(VERIFY)}, got {verify!r}")
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    check = VERIFY[verify]
    if check is None:
        return images
    with ThreadPoolExecutor(max(1, workers)) as pool:
        problems = list(pool.map(check, images.files, chunksize=256))
    bad = [(path, problem) for path, problem in zip(images.files, problems) if problem is not None]
    if not bad:
        return images
    if on_bad == "raise":
        raise BadImageError(bad, hint="pass on_bad='skip' to drop and count them instead")
    keep = [i for i, problem in enumerate(problems) if problem is None]
    if not keep:
        raise BadImageError(bad, hint="no readable image is left")
    return ImageList([images.files[i] for i in keep], images.labels[keep], images.classes,
                     skipped=images.skipped + bad)


def scan_folder(root: str, on_bad: str = "raise") -> ImageList:
    """ImageNet layout: ``root/<class>/<image>``; classes are the sub-folders, sorted by name.

    Files whose names do not end in :data:`IMAGE_EXTENSIONS` are ignored (like
    torchvision's ``ImageFolder``). An empty class folder raises (naming it) unless
    ``on_bad="skip"``, which keeps its class index, so labels stay those of the full layout.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {root!r} does not exist")
    root = os.path.abspath(root)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise ValueError(f"{root!r} has no class sub-folders (expected root/<class>/<image>)")
    files, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        found = sorted(
            os.path.join(dirpath, f)
            for dirpath, _, filenames in os.walk(folder, followlinks=True)
            for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not found:
            if on_bad != "skip":
                raise ValueError(f"class folder {folder!r} holds no image files "
                                 "(pass on_bad='skip' to keep going without it)")
            skipped.append((folder, "empty class folder"))
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(f"no image files under {root!r}")
    return ImageList(files, np.array(labels), classes, skipped=skipped)


def read_file_list(path: str, root: str | None = None) -> ImageList:
    """A ``path label`` file (one sample per line, ``#`` comments and blank lines ignored).

    Relative paths are taken from ``root`` (default: the list file's folder). Labels are
    non-negative integers; ``classes`` are their string forms ``"0" … str(max)``. A
    malformed line raises naming the list file and line number.
    """
    base = root if root is not None else os.path.dirname(os.path.abspath(path))
    files, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(None, 1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}:{number}: expected '<path> <label>', got {text!r}")
            files.append(os.path.normpath(os.path.join(base, parts[0])))
            labels.append(int(parts[1]))
    if not files:
        raise ValueError(f"file list {path!r} names no files")
    return ImageList(files, np.array(labels), [str(c) for c in range(max(labels) + 1)])
