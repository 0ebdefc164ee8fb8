"""OCR for scans: images (png, jpg, tiff) and the pages of a PDF that have no text layer.

RapidOCR (PP-OCR models run by onnxruntime) ships its models inside its wheel, so reading a scan
needs no download and no network. The engine loads once per process, on the first page to read.

A line is (text, x0, y0, x1, y1) with the box in fractions of the page's width and height, origin
top left: the same boxes `Document.boxes` holds, so a cited passage can be shown on its page.

Progress: each page is logged ("OCR page 3/12 of scan.pdf") on the `docqa.ingest.ocr` logger, then
a summary with the speed in pages/s. Inside `ocr_progress(callback)` the same messages also go to
`callback`, which is how `docqa index` shows them in its progress bar while a scan is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.ingest.readers import Document, UnreadableFile, plain_headings

if TYPE_CHECKING:
    from PIL import Image

OcrLine = tuple[str, float, float, float, float]  # text, x0, y0, x1, y1 (fractions, origin top left)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
# Pages of a PDF are rendered at this resolution, but no larger than RENDER_MAX_SIDE pixels: RapidOCR
# shrinks anything bigger to 2000 px before detecting text, so more pixels would only cost time.
RENDER_DPI = 200
RENDER_MAX_SIDE = 2000

_engine: Any = None
_engine_lock = threading.Lock()
_hook: ContextVar[Callable[[str], None] | None] = ContextVar("ocr_progress_hook", default=None)


@contextmanager
def ocr_progress(callback: Callable[[str], None]) -> Iterator[None]:
    """Send OCR progress messages to `callback` as well as to the log, for the `with` block."""
    token = _hook.set(callback)
    try:
        yield
    finally:
        _hook.reset(token)


def _report(message: str) -> None:
    log.info(message)
    callback = _hook.get()
    if callback is not None:
        callback(message)


def _get_engine() -> Any:
    """The RapidOCR engine, loaded once per process (about a second) and kept quiet."""
    global _engine
    with _engine_lock:
        if _engine is None:
            started = time.perf_counter()
            # RapidOCR's loggers print at DEBUG level through their own handlers; only errors matter
            # here. get_logger is cached, so setting the level now sticks when the engine asks again.
            try:
                from rapidocr_onnxruntime.utils.logger import get_logger

                for name in ("RapidOCR", "OrtInferSession"):
                    get_logger(name).setLevel(logging.ERROR)
                from rapidocr_onnxruntime import RapidOCR

                # The default config points at the models inside the package: nothing is fetched.
                engine = RapidOCR(print_verbose=False)
            except ImportError as exc:
                raise UnreadableFile(
                    f"OCR needs rapidocr-onnxruntime ({exc}); install it: pip install rapidocr-onnxruntime"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a missing or damaged model file, an onnxruntime error
                raise UnreadableFile(
                    f"the OCR engine could not load ({exc.__class__.__name__}: {exc});"
                    " reinstall it: pip install --force-reinstall rapidocr-onnxruntime"
                ) from None
            _restore_spaces(engine)
            _engine = engine
            log.info("OCR engine loaded in %.1f s", time.perf_counter() - started)
        return _engine


# A space goes between two characters when the recognizer gives it at least this probability in the
# frames between them. Measured on rendered lines (DejaVu Sans, Serif, Mono, Condensed, Bold at 16-30
# px): gaps inside words peak at 0.004, gaps between words mostly at 0.03 and up (one 0.02).
SPACE_MIN_PROB = 0.01


def _restore_spaces(engine: Any) -> None:
    """Have the engine keep the spaces its recognizer half-sees.

    The recognizer (PP-OCRv4, trained mostly on Chinese) often drops the spaces of a short English
    line: "It stands 36 metres tall." comes out as "Itstands36metrestall.", which no search finds.
    Between words the space still gets some probability, and inside words practically none, so the
    decoder puts back a space where that probability passes SPACE_MIN_PROB. Left as it is when the
    engine's internals are not the ones this was written for.
    """
    recognizer = getattr(engine, "text_rec", None)
    decoder = getattr(recognizer, "postprocess_op", None)
    characters = getattr(decoder, "character", None)
    if not characters or characters[-1] != " " or characters[0] != "blank":
        log.debug("RapidOCR's recognizer is not the expected CTC decoder; spaces are left as it reads them")
        return
    recognizer.postprocess_op = _SpacedDecoder(decoder)


class _SpacedDecoder:
    """CTC greedy decoding as RapidOCR's, plus the spaces of `_restore_spaces`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.characters: list[str] = inner.character
        self.space = len(self.characters) - 1

    def __call__(self, preds: Any, return_word_box: bool = False, **kwargs: Any) -> list:
        if return_word_box:  # word boxes need the engine's own bookkeeping
            return self.inner(preds, return_word_box, **kwargs)
        return [self.decode(row) for row in preds]

    def decode(self, probs: Any) -> tuple[str, float]:
        """One line's text and mean confidence from its (frames, classes) probabilities."""
        best = probs.argmax(axis=1)
        chars: list[str] = []
        confidences: list[float] = []
        previous = 0
        space_seen = 0.0  # the space's highest probability since the last character
        for frame, index in enumerate(best.tolist()):
            if index == 0 or index == previous:
                space_seen = max(space_seen, float(probs[frame, self.space]))
                previous = index
                continue
            char = _halfwidth(self.characters[index])
            if (
                chars
                and char != " "
                and chars[-1] != " "
                and space_seen >= SPACE_MIN_PROB
                and not (_is_cjk(chars[-1]) or _is_cjk(char))
            ):
                chars.append(" ")
            chars.append(char)
            confidences.append(float(probs[frame, index]))
            space_seen = 0.0
            previous = index
        return "".join(chars), (sum(confidences) / len(confidences) if confidences else 0.0)


def _is_cjk(char: str) -> bool:
    """Chinese, Japanese and Korean text has no spaces between characters to restore."""
    return "\u2e80" <= char <= "\ufaff" or "\uff61" <= char <= "\uffdc"


def _halfwidth(char: str) -> str:
    """The ASCII form of a full-width letter or sign: the recognizer reads an English comma as "，"
    at times, which would glue the words around it.

    >>> _halfwidth("，"), _halfwidth("Ａ"), _halfwidth("中")
    (',', 'A', '中')
    """
    return chr(ord(char) - 0xFEE0) if len(char) == 1 and "\uff01" <= char <= "\uff5e" else char


def ocr_image(image: Image.Image) -> list[OcrLine]:
    """The text lines of an image, top to bottom and left to right; boxes on one line are merged."""
    import numpy as np

    rgb = _to_rgb(image)
    width, height = rgb.size
    if width < 1 or height < 1:
        return []
    # No angle classifier: on scans it turned some upright lines over (2 of 35 on a generated page,
    # read back as garbage); a page scanned upside down is rare and its lines would need it all alike.
    result, _ = _get_engine()(np.asarray(rgb), use_cls=False)
    found: list[OcrLine] = []
    for points, text, _score in result or []:
        text = " ".join(str(text).split())
        if not text:
            continue
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        found.append(
            (
                text,
                _clamp(min(xs) / width),
                _clamp(min(ys) / height),
                _clamp(max(xs) / width),
                _clamp(max(ys) / height),
            )
        )
    return merge_lines(found)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def merge_lines(boxes: list[OcrLine]) -> list[OcrLine]:
    """Text boxes as lines in reading order: boxes whose vertical middles fall within one another's
    height are one line, joined left to right.

    The detector often splits a line at wide gaps (a tab, a table's columns); a question about the
    line needs it whole. Two columns side by side are read across, row by row: this does not find
    columns.

    >>> merge_lines([("world", 0.5, 0.1, 0.8, 0.15), ("Second", 0.1, 0.3, 0.4, 0.35), ("Hello", 0.1, 0.11, 0.4, 0.16)])
    [('Hello world', 0.1, 0.1, 0.8, 0.16), ('Second', 0.1, 0.3, 0.4, 0.35)]
    """
    lines: list[list[OcrLine]] = []
    for box in sorted(boxes, key=lambda b: (b[2] + b[4]) / 2):
        middle = (box[2] + box[4]) / 2
        if lines:
            last = lines[-1]
            top = min(b[2] for b in last)
            bottom = max(b[4] for b in last)
            last_middle = (top + bottom) / 2
            if top <= middle <= bottom and box[2] <= last_middle <= box[4]:
                last.append(box)
                continue
        lines.append([box])
    out: list[OcrLine] = []
    for line in lines:
        line.sort(key=lambda b: b[1])
        out.append(
            (
                " ".join(b[0] for b in line),
                min(b[1] for b in line),
                min(b[2] for b in line),
                max(b[3] for b in line),
                max(b[4] for b in line),
            )
        )
    return out


def _to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of `image`: transparent parts on white (dark text on a transparent background is
    common in screenshots and would turn black on black), 16-bit and float scans scaled to 8 bits."""
    from PIL import Image as PILImage

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.full_like(values, 255.0)
        image = PILImage.fromarray(scaled.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def ocr_pdf_pages(path: Path, pages: list[int]) -> dict[int, list[OcrLine]]:
    """OCR the given 1-based pages of a PDF (those without a text layer), rendered with pdfium.

    Logs each page as it starts and the speed in pages/s at the end.
    """
    import pypdfium2 as pdfium

    if not pages:
        return {}
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise UnreadableFile(f"could not open the PDF to read its scanned pages ({exc})") from None
    out: dict[int, list[OcrLine]] = {}
    try:
        count = len(pdf)
        bad = [p for p in pages if not 1 <= p <= count]
        if bad:
            raise ValueError(f"pages {bad} are not in {path.name}, which has {count} pages")
        started = time.perf_counter()
        for k, number in enumerate(pages, start=1):
            _report(_page_message(k, len(pages), number, path.name, started))
            page = pdf[number - 1]
            try:
                width, height = page.get_size()  # in points (1/72 inch)
                scale = min(RENDER_DPI / 72, RENDER_MAX_SIDE / max(width, height, 1.0))
                try:
                    image = page.render(scale=scale).to_pil()
                except pdfium.PdfiumError as exc:
                    raise UnreadableFile(f"could not render page {number} for OCR ({exc})") from None
            finally:
                page.close()
            out[number] = ocr_image(image)
        _report(_summary(len(pages), path.name, time.perf_counter() - started))
    finally:
        pdf.close()
    return out


def _page_message(k: int, total: int, number: int, name: str, started: float) -> str:
    """E.g. "OCR page 3/12 of scan.pdf, 0.42 pages/s" (with the page number when it differs from k).

    >>> _page_message(2, 3, 7, "scan.pdf", float("inf"))
    'OCR page 2/3 of scan.pdf (page 7)'
    """
    text = f"OCR page {k}/{total} of {name}" + (f" (page {number})" if number != k else "")
    elapsed = time.perf_counter() - started
    if k > 1 and elapsed > 0:
        text += f", {(k - 1) / elapsed:.2f} pages/s"
    return text


def _summary(pages: int, name: str, seconds: float) -> str:
    """E.g. "OCR of scan.pdf: 12 pages in 30.0 s (0.40 pages/s)".

    >>> _summary(12, "scan.pdf", 30.0)
    'OCR of scan.pdf: 12 pages in 30.0 s (0.40 pages/s)'
    """
    rate = pages / seconds if seconds > 0 else float("inf")
    return f"OCR of {name}: {pages} page{'s' if pages != 1 else ''} in {seconds:.1f} s ({rate:.2f} pages/s)"


def lines_to_document(pages: list[tuple[int, list[OcrLine]]]) -> Document:
    """OCR lines of each page as one Document: a line per line, a blank line where the gap before a
    line is taller than a line (a new paragraph, so chunks and headings follow the layout), pages
    marked and every line's box kept."""
    parts: list[str] = []
    marks: list[tuple[int, int]] = []
    boxes: list[tuple[int, int, int, float, float, float, float]] = []
    offset = 0
    for number, lines in pages:
        if not lines:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        marks.append((offset, number))
        heights = sorted(y1 - y0 for _, _, y0, _, y1 in lines)
        typical = heights[len(heights) // 2]
        previous_bottom: float | None = None
        for text, x0, y0, x1, y1 in lines:
            if previous_bottom is not None:
                gap = "\n\n" if y0 - previous_bottom > typical else "\n"
                parts.append(gap)
                offset += len(gap)
            parts.append(text)
            boxes.append((offset, offset + len(text), number, x0, y0, x1, y1))
            offset += len(text)
            previous_bottom = y1
    text = "".join(parts)
    return Document(text, headings=plain_headings(text), pages=marks, boxes=boxes)


def read_image(path: Path) -> Document:
    """An image's text by OCR: png, jpg/jpeg, tif/tiff, one page per frame of a multi-page TIFF."""
    from PIL import Image as PILImage
    from PIL import ImageOps, ImageSequence, UnidentifiedImageError

    started = time.perf_counter()
    pages: list[tuple[int, list[OcrLine]]] = []
    try:
        with PILImage.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                if frames > 1:
                    _report(_page_message(number, frames, number, path.name, started))
                # A phone photo stores its rotation in EXIF; OCR needs the text upright.
                upright = ImageOps.exif_transpose(frame)
                pages.append((number, ocr_image(upright if upright is not None else frame)))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the indexer reports these as "can't be read"
    except UnidentifiedImageError:
        raise UnreadableFile(
            f"not a readable {path.suffix.lower().lstrip('.')} image (damaged, or another format renamed)"
        ) from None
    except PILImage.DecompressionBombError as exc:
        raise UnreadableFile(f"image too large to read safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file fails while decoding
        raise UnreadableFile(f"damaged image ({exc})") from None
    _report(_summary(len(pages), path.name, time.perf_counter() - started))
    doc = lines_to_document(pages)
    if not doc.text.strip():
        raise UnreadableFile("no text found in the image (OCR read nothing: a photo, a blank page, or text too small)")
    return doc
