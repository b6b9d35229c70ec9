"""Decks out and in: CSV (front,back with a header) and Anki packages (.apkg via genanki)."""

from __future__ import annotations

import csv
import html
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import genanki  # type: ignore[import-untyped]

from shared.errors import InvalidInput

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_CARDS = 5000
CSV_HEADER = ("front", "back")
ANKI_MODEL_ID = 1_607_392_319  # fixed, so re-imports into Anki update the same note type
ANKI_MODEL = genanki.Model(
    ANKI_MODEL_ID,
    "Brainwave basic",
    fields=[{"name": "Front"}, {"name": "Back"}],
    templates=[
        {
            "name": "Card 1",
            "qfmt": "{{Front}}",
            "afmt": '{{FrontSide}}<hr id="answer">{{Back}}',
        }
    ],
)


def to_csv(cards: Sequence[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    writer.writerows(cards)
    return buffer.getvalue()


def parse_csv(data: bytes) -> list[tuple[str, str]]:
    """Cards from a CSV with a `front,back` header (any case, any extra columns).

    Raises InvalidInput, naming the problem, for anything else.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The CSV is not UTF-8 text.") from exc
    if "\x00" in text:
        raise InvalidInput("The CSV contains binary data.")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise InvalidInput(f"The CSV is malformed: {exc}.") from exc
    if not rows:
        raise InvalidInput("The CSV is empty.")
    header = [h.strip().lower() for h in rows[0]]
    if "front" not in header or "back" not in header:
        raise InvalidInput("The CSV needs a header row with `front` and `back` columns.")
    front_at, back_at = header.index("front"), header.index("back")
    cards: list[tuple[str, str]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(front_at, back_at):
            raise InvalidInput(f"Row {number} of the CSV has too few columns.")
        front, back = row[front_at].strip(), row[back_at].strip()
        if not front or not back or len(front) > 4000 or len(back) > 8000:
            raise InvalidInput(f"Row {number} of the CSV needs a front and a back (not too long).")
        cards.append((front, back))
    if not cards:
        raise InvalidInput("The CSV has no cards.")
    if len(cards) > MAX_IMPORT_CARDS:
        raise InvalidInput(f"Import at most {MAX_IMPORT_CARDS} cards at once.")
    return cards


def anki_id(hex_id: str) -> int:
    return int(hex_id[:15], 16)


def write_apkg(deck_id: str, title: str, cards: Sequence[tuple[str, str, str]]) -> Path:
    """Write an Anki package to a temporary file (blocking: run it in a thread).

    `cards` are (card id, front, back); the caller deletes the file when sent.
    """
    anki_deck = genanki.Deck(anki_id(deck_id), title)
    for card_id, front, back in cards:
        anki_deck.add_note(
            genanki.Note(
                model=ANKI_MODEL,
                fields=[_html(front), _html(back)],
                guid=genanki.guid_for("brainwave", card_id),
            )
        )
    handle, name = tempfile.mkstemp(prefix="brainwave-deck-", suffix=".apkg")
    os.close(handle)
    try:
        genanki.Package(anki_deck).write_to_file(name)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def filename_for(title: str, extension: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in title).strip() or "deck"
    return f"{safe[:80].replace(' ', '_')}.{extension}"
