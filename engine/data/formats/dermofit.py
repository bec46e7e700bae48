"""Dermofit Image Library: ``<root>/<CLASS>/<id>/<id>.png`` (+ ``<id>mask.png``) listed in ``lesionlist.txt``.

``lesionlist.txt`` lines are ``<n> <id> <CLASS>``. MEL is melanoma; the carcinomas BCC and SCC are dropped
as in the paper (leaving 973 images); AK, DF, IEC, ML, PYO, SK and VASC are benign.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from engine.data.records import BENIGN, MELANOMA, Dataset, LesionRecord, finish_dataset, require_file
from engine.errors import InputError

LIST = "lesionlist.txt"
RULES: dict[str, int | str] = {
    "MEL": MELANOMA,
    "AK": BENIGN,
    "DF": BENIGN,
    "IEC": BENIGN,
    "ML": BENIGN,
    "PYO": BENIGN,
    "SK": BENIGN,
    "VASC": BENIGN,
    "BCC": "carcinoma",
    "SCC": "carcinoma",
}


def layout(root: Path, fmt: str = "dermofit") -> Path:
    listing = root / LIST
    if not listing.is_file():
        raise InputError(f"{root}: no {LIST} (is this the Dermofit folder?)")
    return listing


def load(root: Path, fmt: str = "dermofit") -> Dataset:
    listing = layout(root, fmt)
    records: list[LesionRecord] = []
    dropped: Counter[str] = Counter()
    for line, text in enumerate(listing.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise InputError(f"{listing}, line {line}: expected '<n> <id> <CLASS>', got {text.strip()!r}")
        _, lesion, cls = fields
        rule = RULES.get(cls.upper())
        if rule is None:
            raise InputError(f"{listing}, line {line}: unknown class {cls!r} (known: {', '.join(RULES)})")
        if isinstance(rule, str):
            dropped[rule] += 1
            continue
        folder = root / cls / lesion
        image = require_file(folder / f"{lesion}.png", listing, line)
        mask = folder / f"{lesion}mask.png"
        records.append(
            LesionRecord(
                image=image.resolve(),
                label=rule,
                diagnosis=cls.upper(),
                source=fmt,
                image_id=lesion,
                lesion_id=lesion,
                masks={"segmentation": mask.resolve()} if mask.is_file() else {},
            )
        )
    return finish_dataset(fmt, root, records, dropped, listing)
