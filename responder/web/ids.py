"""Row ids as people and programs write them: in paths, query strings, forms and commands."""

from __future__ import annotations

MAX_ID = 2**31 - 1  # ids are INTEGER columns; larger numbers cannot name anything


def row_id(raw: str) -> int | None:
    """The id `raw` spells (ASCII digits, within an INTEGER column), or None."""
    # isdecimal() alone accepts other scripts' digits, which int() then takes or refuses.
    if raw.isascii() and raw.isdecimal() and int(raw) <= MAX_ID:
        return int(raw)
    return None
