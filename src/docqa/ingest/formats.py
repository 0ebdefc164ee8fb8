"""Readers for slides, spreadsheets, e-books and e-mail: pptx, xlsx, csv, epub, eml.

Each returns a `Document` like the readers in readers.py, and raises `UnreadableFile` with a reason
for a file it can't read (not a zip, a missing part, broken XML), so the indexer reports it by name.
Tables become one line per row with each value next to its column's header ("Year: 2021; Sales:
300"), so a passage holding a cell also says what the cell means.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import posixpath
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree

from docqa.ingest.readers import (
    PATH_SEP,
    Document,
    UnreadableFile,
    decode_text,
    heading_paths,
    html_to_document,
    sane_title,
)

# What a malformed Office or EPUB zip raises from zipfile, the XML parsers (lxml's XMLSyntaxError and
# ElementTree's ParseError are SyntaxErrors) and the part lookups.
_BROKEN = (zipfile.BadZipFile, KeyError, ValueError, SyntaxError, IndexError, TypeError, AttributeError)


def _what_broke(exc: Exception) -> str:
    """A short reason for one of `_BROKEN`: zipfile's KeyError means a part the format needs is missing."""
    if isinstance(exc, KeyError):
        return "a part it needs is missing"
    if isinstance(exc, SyntaxError):
        return "broken XML"
    return exc.__class__.__name__


def read_format(path: Path) -> Document:
    """Read a .pptx, .xlsx, .csv, .epub or .eml file (the dispatch for readers.read_document)."""
    return READERS[path.suffix.lower()](path)


class _Blocks:
    """Text built block by block (blank line between), remembering where each block starts."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0

    def add(self, text: str) -> int:
        start = self.offset
        self.parts.append(text)
        self.offset += len(text) + 2
        return start

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def column_letter(index: int) -> str:
    """Spreadsheet column name of a 0-based index.

    >>> column_letter(0), column_letter(25), column_letter(26), column_letter(701)
    ('A', 'Z', 'AA', 'ZZ')
    """
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(65 + rem) + name
    return name


def table_lines(rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows as lines "Header: value; Header: value", the header being the first non-empty row.

    A value is only findable with what it means when its column's name sits next to it. Empty
    cells and fully empty rows are skipped; a column without a header is named by its letter. A
    table that is a header alone keeps that row, so its text is not lost.

    >>> table_lines([["", ""], ["Region", "Year", ""], ["North", "2021", "x"], ["", "", ""]])
    ['Region: North; Year: 2021; Column C: x']
    >>> table_lines([["Only", "a header"]])
    ['Only; a header']
    """
    header: list[str] | None = None
    lines: list[str] = []
    for row in rows:
        cells = [_one_line(c) for c in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        pairs = [
            f"{header[i] if i < len(header) and header[i] else 'Column ' + column_letter(i)}: {cell}"
            for i, cell in enumerate(cells)
            if cell
        ]
        lines.append("; ".join(pairs))
    if header is not None and not lines:
        return ["; ".join(c for c in header if c)]
    return lines


# ---------------------------------------------------------------- pptx


def read_pptx(path: Path) -> Document:
    """One block per slide, the title first, then every shape top to bottom and left to right.

    Each slide is a section headed "Slide N: title" and marked as page N, so a citation says which
    slide. Tables are rows with their header; speaker notes follow the slide's shapes. Hidden slides
    are left out with a warning, like hidden HTML text.
    """
    try:
        import pptx
        from pptx.exc import PackageNotFoundError
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UnreadableFile("python-pptx is not installed (pip install python-pptx)") from exc

    try:
        deck = pptx.Presentation(str(path))
    except PackageNotFoundError:
        raise UnreadableFile(
            "not a valid .pptx file (not a PowerPoint zip package: truncated, encrypted, or not .pptx)"
        ) from None
    except _BROKEN as exc:
        raise UnreadableFile(f"not a valid .pptx file ({_what_broke(exc)})") from None
    blocks = _Blocks()
    entries: list[tuple[int, int, str]] = []
    pages: list[tuple[int, int]] = []
    warnings: list[str] = []
    try:
        for number, slide in enumerate(deck.slides, start=1):
            if slide._element.get("show") in ("0", "false"):
                warnings.append(f"slide {number} is hidden: not indexed")
                continue
            title_shape = slide.shapes.title
            title = _one_line(title_shape.text_frame.text)[:120] if title_shape is not None else ""
            lines = _shape_lines(slide.shapes, skip=title_shape)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                note_lines = [_one_line(p.text) for p in notes.paragraphs] if notes is not None else []
                if any(note_lines):
                    lines.append("Speaker notes: " + " ".join(n for n in note_lines if n))
            body = "\n".join(line for line in [title, *lines] if line)
            if not body:
                continue
            start = blocks.add(body)
            entries.append((start, 1, f"Slide {number}: {title}" if title else f"Slide {number}"))
            pages.append((start, number))
        deck_title = _office_title(deck.core_properties.title)
    except _BROKEN as exc:
        raise UnreadableFile(f"not a valid .pptx file ({_what_broke(exc)} in a slide)") from None
    if not blocks.parts:
        raise UnreadableFile("no text found on any slide")
    return Document(blocks.text, headings=heading_paths(entries, deck_title), pages=pages, warnings=warnings)


def _office_title(title: str | None) -> str | None:
    """The metadata title unless it is a template's default ("PowerPoint Presentation")."""
    title = sane_title(title)
    if title and title.casefold() in {"powerpoint presentation", "presentation", "slide 1"}:
        return None
    return title


def _shape_lines(shapes, skip=None) -> list[str]:  # a pptx shape collection
    """Text of the shapes in reading order: by top, then left; groups read as one shape."""
    from pptx.shapes.group import GroupShape

    def position(shape) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    lines: list[str] = []
    for shape in sorted(shapes, key=position):
        if skip is not None and shape.shape_id == skip.shape_id:
            continue
        if isinstance(shape, GroupShape):
            lines.extend(_shape_lines(shape.shapes))
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            lines.extend(table_lines(rows))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines.extend(text for p in shape.text_frame.paragraphs if (text := _one_line(p.text)))
    return lines


# ---------------------------------------------------------------- xlsx and csv


def read_xlsx(path: Path) -> Document:
    """Every visible sheet as rows with their header, one block per row, the sheet's name as heading.

    Values are what Excel last computed (a formula's cached result; a file saved by a program that
    never computed it has none). Hidden sheets are left out with a warning.
    """
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UnreadableFile("openpyxl is not installed (pip install openpyxl)") from exc

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile):
        raise UnreadableFile(
            "not a valid .xlsx file (not an Excel zip package: truncated, encrypted, .xls, or not .xlsx)"
        ) from None
    except _BROKEN as exc:
        raise UnreadableFile(f"not a valid .xlsx file ({_what_broke(exc)})") from None
    blocks = _Blocks()
    entries: list[tuple[int, int, str]] = []
    warnings: list[str] = []
    try:
        for sheet in book.worksheets:
            if sheet.sheet_state != "visible":
                warnings.append(f"sheet '{sheet.title}' is hidden: not indexed")
                continue
            sheet.reset_dimensions()  # read every stored cell, whatever the file claims its size is
            rows = ([_cell_text(cell) for cell in row] for row in sheet.iter_rows())
            lines = table_lines(rows)
            if lines:
                entries.append((blocks.add(lines[0]), 1, _one_line(sheet.title)))
                for line in lines[1:]:
                    blocks.add(line)
        title = sane_title(book.properties.title) if book.properties else None
    except _BROKEN as exc:
        raise UnreadableFile(f"not a valid .xlsx file ({_what_broke(exc)} in a sheet)") from None
    finally:
        book.close()
    if not blocks.parts:
        raise UnreadableFile("no cell holds a value" + (" (every sheet is hidden)" if warnings else ""))
    return Document(blocks.text, headings=heading_paths(entries, title), warnings=warnings)


def _cell_text(cell) -> str:  # an openpyxl read-only cell
    """A cell's value as Excel shows it, near enough: 0.25 formatted as a percentage reads "25%".

    Dates without a time read as ISO dates; floats keep 15 significant digits, like Excel.
    """
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(" ", "minutes")
    if isinstance(value, int | float):
        if "%" in (getattr(cell, "number_format", "") or ""):
            return f"{value * 100:.15g}%"
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}" if isinstance(value, float) else str(value)
    return str(value)


def read_csv(path: Path) -> Document:
    """Rows with their header, one block per row; the delimiter (, ; tab |) is sniffed.

    Decoded like text files: UTF-8 (with or without a byte order mark), else cp1252 with a warning.
    """
    text, warnings = decode_text(path.read_bytes())
    sample = text[:20000]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to tell: commas
        dialect = csv.excel
    try:
        lines = table_lines(csv.reader(io.StringIO(text, newline=""), dialect))  # quoted fields may span lines
    except csv.Error as exc:
        raise UnreadableFile(f"not a readable CSV file ({exc})") from None
    if not lines:
        raise UnreadableFile("no rows with values")
    blocks = _Blocks()
    for line in lines:
        blocks.add(line)
    return Document(blocks.text, warnings=warnings)


# ---------------------------------------------------------------- epub

_MAX_CHAPTER_BYTES = 50_000_000  # a chapter that inflates past this is a zip bomb, not a book


def read_epub(path: Path) -> Document:
    """The book's chapters in spine order, each read like an HTML page, under the book's title.

    container.xml names the package (OPF) file; its spine lists the chapters, its dc:title the
    title that leads every heading path.
    """
    try:
        with zipfile.ZipFile(path) as book:
            opf_name = _epub_package_name(book)
            package = ElementTree.fromstring(book.read(_epub_member(book, opf_name)))
            title_el = package.find("{*}metadata/{*}title")
            title = _one_line(title_el.text or "")[:120] if title_el is not None and title_el.text else None
            chapters = _epub_spine(package, posixpath.dirname(opf_name))
            if not chapters:
                raise UnreadableFile("not a valid .epub file (its spine lists no chapters)")
            _refuse_drm(book, chapters)
            blocks = _Blocks()
            entries: list[tuple[int, int, str]] = []
            warnings: list[str] = []
            for name in chapters:
                info = _epub_member(book, name)
                if info.file_size > _MAX_CHAPTER_BYTES:
                    raise UnreadableFile(f"chapter {name} inflates to {info.file_size / 1e6:.0f} MB: refused")
                try:
                    html, chapter_warnings = decode_text(book.read(info))
                except UnreadableFile as exc:
                    raise UnreadableFile(f"chapter {name}: {exc}") from None
                warnings.extend(f"chapter {name}: {w}" for w in chapter_warnings)
                chapter = html_to_document(html)
                if not chapter.text.strip():
                    continue  # a cover image, a blank page
                base = blocks.add(chapter.text)
                entries.extend(_heading_levels(chapter, base))
    except (zipfile.BadZipFile, EOFError):
        raise UnreadableFile("not a valid .epub file (not a zip archive, or truncated)") from None
    except ElementTree.ParseError as exc:
        raise UnreadableFile(f"not a valid .epub file (broken XML: {exc})") from None
    except (ValueError, zipfile.LargeZipFile, NotImplementedError) as exc:  # e.g. an unsupported compression
        raise UnreadableFile(f"not a valid .epub file ({exc.__class__.__name__}: {exc})") from None
    if not blocks.parts:
        raise UnreadableFile("no text found in any chapter")
    return Document(blocks.text, headings=heading_paths(entries, title), warnings=warnings)


def _epub_package_name(book: zipfile.ZipFile) -> str:
    container = ElementTree.fromstring(book.read(_epub_member(book, "META-INF/container.xml")))
    rootfile = container.find(".//{*}rootfile")
    name = rootfile.get("full-path") if rootfile is not None else None
    if not name:
        raise UnreadableFile("not a valid .epub file (META-INF/container.xml names no package file)")
    return unquote(name)


def _epub_member(book: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    try:
        return book.getinfo(name)
    except KeyError:
        raise UnreadableFile(f"not a valid .epub file ({name} is missing)") from None


def _epub_spine(package: ElementTree.Element, base: str) -> list[str]:
    """Zip names of the spine's (X)HTML documents, in reading order, each once."""
    manifest = {}
    for item in package.iterfind("{*}manifest/{*}item"):
        href, media = item.get("href"), item.get("media-type", "")
        if item.get("id") and href and ("html" in media or media == ""):
            manifest[item.get("id")] = posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0])))
    names: list[str] = []
    for ref in package.iterfind("{*}spine/{*}itemref"):
        name = manifest.get(ref.get("idref", ""))
        if name and name not in names:
            names.append(name)
    return names


def _refuse_drm(book: zipfile.ZipFile, chapters: list[str]) -> None:
    """Chapters listed in META-INF/encryption.xml can't be read (obfuscated fonts are harmless)."""
    try:
        encryption = ElementTree.fromstring(book.read("META-INF/encryption.xml"))
    except KeyError:
        return
    encrypted = {unquote(ref.get("URI", "")) for ref in encryption.iter() if ref.tag.endswith("CipherReference")}
    if encrypted & set(chapters):
        raise UnreadableFile("the EPUB is DRM-protected (its chapters are encrypted)")


def _heading_levels(doc: Document, base: int) -> list[tuple[int, int, str]]:
    """A read page's heading paths back as (offset, level, heading), shifted by `base`.

    The level is the path's length, so a chapter's title and headings nest under the book's title.
    """
    out = []
    for offset, path in doc.headings:
        names = path.split(PATH_SEP)
        out.append((base + offset, len(names), names[-1]))
    return out


# ---------------------------------------------------------------- eml

_SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")


def read_eml(path: Path) -> Document:
    """An e-mail: its From/To/Date/Subject block, the body, and the attachments' names.

    The plain-text body is preferred; an HTML-only message is read like an HTML page. Attachments
    are listed, not read. The subject is the title every passage is searched with.
    """
    import email
    from email import policy

    try:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        header_lines = [
            f"{name}: {value}" for name in _SHOWN_HEADERS if (value := _one_line(message.get(name, "") or ""))
        ]
        if not any(line.split(":")[0] in ("From", "To", "Date", "Subject") for line in header_lines):
            raise UnreadableFile("not an e-mail message (no From, To, Date or Subject header)")
        subject = _one_line(message.get("Subject", "") or "")[:120] or None
        blocks = _Blocks()
        blocks.add("\n".join(header_lines))
        entries: list[tuple[int, int, str]] = []
        warnings: list[str] = []
        body = message.get_body(preferencelist=("plain", "html"))
        if body is not None:
            content = _part_text(body, warnings)
            if body.get_content_subtype() == "html":
                page = html_to_document(content)
                if page.text.strip():
                    entries.extend(_heading_levels(page, blocks.add(page.text)))
            elif content.strip():
                blocks.add(content.replace("\r\n", "\n").strip())
        names = [part.get_filename() or f"unnamed ({part.get_content_type()})" for part in message.iter_attachments()]
        if names:
            blocks.add("Attachments: " + ", ".join(_one_line(n) for n in names))
    except UnreadableFile:
        raise
    except (ValueError, LookupError, IndexError, TypeError, AttributeError) as exc:
        raise UnreadableFile(f"not a readable e-mail message ({exc.__class__.__name__}: {exc})") from None
    return Document(blocks.text, headings=heading_paths(entries, subject), warnings=warnings)


def _part_text(part, warnings: list[str]) -> str:  # an email.message.EmailMessage
    """A text part's content; an unknown charset is decoded like a text file, with a warning."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        text, _ = decode_text(part.get_payload(decode=True) or b"")
        warnings.append(f"unknown charset '{part.get_content_charset()}' in the message body; decoded as text")
        return text


READERS: dict[str, Callable[[Path], Document]] = {
    ".pptx": read_pptx,
    ".xlsx": read_xlsx,
    ".csv": read_csv,
    ".epub": read_epub,
    ".eml": read_eml,
}
