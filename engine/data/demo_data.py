"""The embedded demo: a procedural skin-lesion data collection written in the official on-disk layouts.

No real dermoscopy data can ship, so ``generate_demo`` renders one (``engine.data.lesions``) and writes it
exactly as the real data sets unpack, to be read back through the real adapters:

====================  ==========================================================================
``isic2019/``         training data (ISIC 2019 layout, incl. a few carcinomas, ``_downsampled`` ids,
                      lesions photographed twice sharing a ``lesion_id``)
``isic2018-task2/``   ~1/6 of the melanoma / nevus / keratosis training images with Task 2 attribute
                      masks and Task 1 segmentations, exact by construction
``isic2020/``         extra in-distribution dermoscopic test set ("unknown" benign with a shifted look)
``derm7pt/``          dermoscopic + clinical photograph of each case, mixed-case paths in meta.csv,
                      planted near-duplicates
``dermofit/``         clinical look, benign classes the training set never had
``demo.json``         the manifest: what each data set holds after the adapters' filtering
====================  ==========================================================================

The whole tree is built in a hidden sibling folder and renamed into place, so an interrupted run leaves
nothing half-written. Output is a pure function of (seed, res, n_train): same pixels and bytes on rerun,
whichever number of worker processes rendered it.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.data.formats.derm7pt import NEAR_DUPLICATE_BITS, label_of, phash_bits
from engine.data.lesions import (
    MASK_NAMES,
    LesionSpec,
    View,
    jitter_view,
    render,
    sample_lesion,
    sample_view,
    seven_point_criteria,
)
from engine.data.records import MELANOMA
from engine.errors import InputError
from engine.fsutil import atomic_write_json, built_folder

DEMO_DEFAULTS: dict[str, int] = {"seed": 0, "res": 64, "n_train": 1200}
GENERATOR = "ganaug-demo"
VERSION = 3  # bump when the output for given parameters changes, so stale demos are not reused
MANIFEST = "demo.json"
MIN_TRAIN = 60
RES_RANGE = (16, 1024)

# Diagnosis mixes. ISIC 2019 class shares follow the real training set (~18% melanoma among the kept
# images); derm7pt and Dermofit follow their published per-class counts. Each diagnosis maps to renderer
# recipes (sub-types) with their shares.
MELANOMA_MIX = {"melanoma_in_situ": 0.35, "melanoma": 0.5, "melanoma_thick": 0.15}
NEVUS_MIX = {
    "nevus": 0.7,
    "clark_nevus": 0.18,
    "congenital_nevus": 0.05,
    "dermal_nevus": 0.04,
    "blue_nevus": 0.02,
    "spitz_nevus": 0.01,
}
ISIC2019 = {  # class: (share, recipes)
    "MEL": (0.18, MELANOMA_MIX),
    "NV": (0.575, NEVUS_MIX),
    "BKL": (0.13, {"seborrheic_keratosis": 0.6, "lentigo": 0.3, "lichenoid_keratosis": 0.1}),
    "AK": (0.045, {"actinic_keratosis": 1.0}),
    "DF": (0.015, {"dermatofibroma": 1.0}),
    "VASC": (0.015, {"vascular": 1.0}),
    "BCC": (0.03, {"bcc": 1.0}),
    "SCC": (0.01, {"scc": 1.0}),
}
ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
TASK2_RECIPES = {*MELANOMA_MIX, *NEVUS_MIX, "seborrheic_keratosis"}  # ISIC 2018: MEL, NV, SK only
ISIC2020 = {  # diagnosis: (share, recipes, melanoma?)
    "melanoma": (0.15, MELANOMA_MIX, True),
    "nevus": (0.45, {"nevus": 0.8, "clark_nevus": 0.2}, False),
    "unknown": (0.27, {"faint_macule": 1.0}, False),
    "seborrheic keratosis": (0.04, {"seborrheic_keratosis": 1.0}, False),
    "lentigo NOS": (0.03, {"lentigo": 1.0}, False),
    "lichenoid keratosis": (0.02, {"lichenoid_keratosis": 1.0}, False),
    "solar lentigo": (0.02, {"lentigo": 1.0}, False),
    "atypical melanocytic proliferation": (0.01, {"clark_nevus": 1.0}, False),
    "cafe-au-lait macule": (0.01, {"lentigo": 1.0}, False),
}
DERM7PT = {  # diagnosis: (cases in the real release, recipe)
    "clark nevus": (399, "clark_nevus"),
    "melanoma (less than 0.76 mm)": (102, "melanoma"),
    "reed or spitz nevus": (79, "spitz_nevus"),
    "melanoma (in situ)": (64, "melanoma_in_situ"),
    "melanoma (0.76 to 1.5 mm)": (53, "melanoma"),
    "seborrheic keratosis": (45, "seborrheic_keratosis"),
    "basal cell carcinoma": (42, "bcc"),
    "dermal nevus": (33, "dermal_nevus"),
    "vascular lesion": (29, "vascular"),
    "blue nevus": (28, "blue_nevus"),
    "melanoma (more than 1.5 mm)": (28, "melanoma_thick"),
    "lentigo": (24, "lentigo"),
    "dermatofibroma": (20, "dermatofibroma"),
    "congenital nevus": (17, "congenital_nevus"),
    "melanosis": (16, "lentigo"),
    "combined nevus": (13, "combined_nevus"),
    "miscellaneous": (8, "lichenoid_keratosis"),
    "recurrent nevus": (6, "recurrent_nevus"),
    "melanoma metastasis": (4, "melanoma_metastasis"),
    "melanoma": (1, "melanoma"),
}
DERM7PT_FOLDERS = (
    "Aal",
    "Abl",
    "Acl",
    "Adl",
    "Bbl",
    "Bcl",
    "Fal",
    "Fbl",
    "Gal",
    "Gbl",
    "Nel",
    "Nfl",
    "Ngl",
    "Nhl",
    "Nml",
)
DERMOFIT = {  # class: (images in the real library, recipes, id prefix)
    "ML": (331, {"nevus": 0.6, "clark_nevus": 0.2, "congenital_nevus": 0.1, "dermal_nevus": 0.1}, "N"),
    "SK": (257, {"seborrheic_keratosis": 1.0}, "K"),
    "BCC": (239, {"bcc": 1.0}, "B"),
    "VASC": (96, {"vascular": 1.0}, "V"),
    "SCC": (88, {"scc": 1.0}, "S"),
    "IEC": (78, {"iec": 1.0}, "I"),
    "MEL": (76, MELANOMA_MIX, "M"),
    "DF": (65, {"dermatofibroma": 1.0}, "D"),
    "AK": (45, {"actinic_keratosis": 1.0}, "A"),
    "PYO": (24, {"pyogenic_granuloma": 1.0}, "P"),
}
SITES_2019 = (
    "anterior torso",
    "posterior torso",
    "lower extremity",
    "upper extremity",
    "head/neck",
    "lateral torso",
    "palms/soles",
    "oral/genital",
    "",
)
SITES_2020 = ("torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital", "")
SITES_7PT = (
    "back",
    "lower limbs",
    "abdomen",
    "upper limbs",
    "chest",
    "head neck",
    "acral",
    "buttocks",
    "genital areas",
)


@dataclass(frozen=True)
class _Job:
    """One photograph to render and where its files go (paths relative to the build folder)."""

    spec: LesionSpec
    view: View
    images: tuple[str, ...]  # the same image written to each path
    masks: tuple[tuple[str, str], ...] = ()  # (mask name, path): "segmentation" and MASK_NAMES
    quality: int = 92  # JPEG quality (ignored for .png)


def _write_job(root: Path, res: int, job: _Job) -> None:
    out = render(job.spec, job.view, res)
    buf = io.BytesIO()
    fmt = "PNG" if job.images[0].endswith(".png") else "JPEG"
    Image.fromarray(out.image).save(buf, format=fmt, **({"quality": job.quality} if fmt == "JPEG" else {}))
    for rel in job.images:  # folders exist: _write_jobs made them
        (root / rel).write_bytes(buf.getvalue())
    for name, rel in job.masks:
        Image.fromarray(out.masks[name].astype(np.uint8) * 255).save(root / rel)


class _Tally:
    """Photographs rendered so far out of those planned, reported to the caller's ``progress(done, total)``."""

    def __init__(self, report: Callable[[int, int], None] | None) -> None:
        self.report, self.done, self.total = report, 0, 0

    def plan(self, n: int) -> None:
        self.total += n
        self._emit()

    def step(self) -> None:
        self.done += 1
        self._emit()

    def _emit(self) -> None:
        if self.report is not None:
            self.report(self.done, self.total)


def _write_jobs(root: Path, res: int, jobs: Sequence[_Job], workers: int, tally: _Tally) -> None:
    for job in jobs:  # folders first, so worker processes never race on mkdir of a shared parent
        for rel in (*job.images, *(p for _, p in job.masks)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
    if workers <= 1 or len(jobs) < 2 * workers:
        for job in jobs:
            _write_job(root, res, job)
            tally.step()
        return
    # spawn, not fork: the caller may hold torch threads; rendering depends only on the job, not the worker.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        chunk = max(1, len(jobs) // (workers * 8))
        for _ in pool.map(_write_job, [root] * len(jobs), [res] * len(jobs), jobs, chunksize=chunk):
            tally.step()


# ------------------------------------------------------------------------------------------- sampling


def _allocate(n: int, shares: Mapping[str, float], minimum: Mapping[str, int] | None = None) -> dict[str, int]:
    """Exact counts summing to n, proportional to ``shares`` (largest remainder), with per-key minimums."""
    minimum = minimum or {}
    base = {k: minimum.get(k, 0) for k in shares}
    rest = n - sum(base.values())
    total = sum(shares.values())
    raw = {k: rest * v / total for k, v in shares.items()}
    counts = {k: base[k] + math.floor(raw[k]) for k in shares}
    left = n - sum(counts.values())
    for k in sorted(shares, key=lambda k: (-(raw[k] - math.floor(raw[k])), k))[:left]:
        counts[k] += 1
    return counts


def _pick(rng: np.random.Generator, mix: Mapping[str, float]) -> str:
    keys = list(mix)
    p = np.array([mix[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _rng(seed: int, *path: int) -> np.random.Generator:
    """Independent stream per (seed, data set, item, ...): results never depend on generation order."""
    return np.random.default_rng([seed, *path])


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _summary(
    fmt: str, root: str, kept: Counter[str], is_mel: Callable[[str], bool], written: int, dropped: Mapping[str, int]
) -> dict[str, Any]:
    mel = sum(v for k, v in kept.items() if is_mel(k))
    n = sum(kept.values())
    return {
        "format": fmt,
        "root": root,
        "n": n,
        "melanoma": mel,
        "benign": n - mel,
        "images": written,
        "dropped": {k: v for k, v in sorted(dropped.items()) if v},
        "diagnoses": dict(sorted(kept.items())),
    }


# ------------------------------------------------------------------------------------------ data sets


def _isic2019(root: Path, seed: int, n_train: int) -> tuple[list[_Job], dict[str, dict[str, Any]]]:
    """ISIC 2019 training layout plus the ISIC 2018 Task 2 subset (masks) drawn from it."""
    rng = _rng(seed, 2019)
    counts = _allocate(n_train, {k: v[0] for k, v in ISIC2019.items()}, {"MEL": 3, "BCC": 1, "SCC": 1})
    labels = [c for c in ISIC2019 for _ in range(counts[c])]
    rng.shuffle(labels)
    n_ids = len(labels)
    base = int(rng.integers(0, 60000))
    ids = [f"ISIC_{base + 2 * i:07d}" for i in range(n_ids)]
    downsampled = set(rng.choice(n_ids // 10 or 1, size=max(1, n_ids // 40), replace=False).tolist())
    image_ids = [f"{x}_downsampled" if i in downsampled else x for i, x in enumerate(ids)]

    # Lesions photographed twice: image i re-photographs an earlier lesion of the same class.
    lesion_of: list[int] = []
    single: dict[str, list[int]] = {}  # per class: lesions photographed once so far
    for i, cls in enumerate(labels):
        pool = single.setdefault(cls, [])
        if pool and rng.random() < 0.1:
            lesion_of.append(pool.pop(int(rng.integers(len(pool)))))
        else:
            lesion_of.append(i)
            pool.append(i)
    photos = Counter(lesion_of)
    specs: dict[int, LesionSpec] = {}
    views: dict[int, View] = {}
    for i, cls in enumerate(labels):
        r = _rng(seed, 2019, i)
        src = lesion_of[i]
        if src == i:
            specs[i] = sample_lesion(_pick(r, ISIC2019[cls][1]), r)
            views[i] = sample_view("dermoscopic", r)
        else:
            specs[i] = specs[src]
            views[i] = sample_view("dermoscopic", r, skin=views[src].skin)

    task2_pool = [i for i in range(n_ids) if specs[i].recipe in TASK2_RECIPES and i not in downsampled]
    n_task2 = min(len(task2_pool), max(12, round(n_train / 6)))
    task2 = set(rng.choice(task2_pool, size=n_task2, replace=False).tolist())
    t2_mel = [i for i in task2_pool if labels[i] == "MEL"]
    if t2_mel and not any(labels[i] == "MEL" for i in task2):  # tiny demos: keep both classes in Task 2
        task2.remove(min(task2))
        task2.add(t2_mel[0])

    jobs = []
    for i in range(n_ids):
        images = [f"isic2019/ISIC_2019_Training_Input/{image_ids[i]}.jpg"]
        masks: list[tuple[str, str]] = []
        if i in task2:
            images.append(f"isic2018-task2/ISIC2018_Task1-2_Training_Input/{ids[i]}.jpg")
            masks.append(
                ("segmentation", f"isic2018-task2/ISIC2018_Task1_Training_GroundTruth/{ids[i]}_segmentation.png")
            )
            masks += [
                (m, f"isic2018-task2/ISIC2018_Task2_Training_GroundTruth_v3/{ids[i]}_attribute_{m}.png")
                for m in MASK_NAMES
            ]
        jobs.append(_Job(specs[i], views[i], tuple(images), tuple(masks), quality=92))

    onehot = [[*(f"{float(c == cls):.1f}" for c in ISIC2019_CLASSES)] for cls in labels]
    _write_csv(
        root / "isic2019/ISIC_2019_Training_GroundTruth.csv",
        ["image", *ISIC2019_CLASSES],
        ([image_ids[i], *onehot[i]] for i in range(n_ids)),
    )
    _write_csv(
        root / "isic2018-task2/ISIC_2019_Training_GroundTruth.csv",
        ["image", *ISIC2019_CLASSES],
        ([ids[i], *onehot[i]] for i in sorted(task2)),
    )
    lesion_ids = {src: f"HAM_{int(rng.integers(10**7)):07d}" for src in sorted(set(lesion_of))}
    no_id = {src for src in lesion_ids if photos[src] == 1 and rng.random() < 0.08}
    meta = []
    for i, cls in enumerate(labels):
        r = _rng(seed, 2019, i, 1)
        age = int(np.clip(5 * round(r.normal(60 if cls == "MEL" else 48, 15) / 5), 5, 85))
        meta.append(
            [
                image_ids[i],
                age,
                SITES_2019[int(r.integers(len(SITES_2019)))],
                "" if lesion_of[i] in no_id else lesion_ids[lesion_of[i]],
                ("female", "male")[int(r.integers(2))],
            ]
        )
    _write_csv(
        root / "isic2019/ISIC_2019_Training_Metadata.csv",
        ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"],
        meta,
    )

    carcinoma = sum(labels.count(c) for c in ("BCC", "SCC"))
    kept = Counter(c for c in labels if c not in ("BCC", "SCC"))
    kept2 = Counter(labels[i] for i in task2)
    return jobs, {
        "isic2019": _summary("isic2019", "isic2019", kept, lambda c: c == "MEL", n_ids, {"carcinoma": carcinoma}),
        "isic2018-masks": _summary("isic2018-masks", "isic2018-task2", kept2, lambda c: c == "MEL", n_task2, {}),
    }


def _isic2020(seed: int, n: int, root: Path) -> tuple[list[_Job], dict[str, Any]]:
    rng = _rng(seed, 2020)
    counts = _allocate(n, {k: v[0] for k, v in ISIC2020.items()}, {"melanoma": 3})
    diags = [d for d in ISIC2020 for _ in range(counts[d])]
    rng.shuffle(diags)
    names = [f"ISIC_{x:07d}" for x in rng.choice(np.arange(100000, 9999999), size=n, replace=False)]
    patients = [f"IP_{x:07d}" for x in rng.choice(np.arange(1000000, 9999999), size=max(1, n // 3), replace=False)]
    patient_of = rng.integers(len(patients), size=n)
    skins: dict[int, tuple[float, float, float]] = {}
    jobs, rows = [], []
    for i, diag in enumerate(diags):
        r = _rng(seed, 2020, i)
        spec = sample_lesion(_pick(r, ISIC2020[diag][1]), r)
        view = sample_view("isic2020", r, skin=skins.get(int(patient_of[i])))
        skins.setdefault(int(patient_of[i]), view.skin)
        jobs.append(_Job(spec, view, (f"isic2020/train/{names[i]}.jpg",), quality=90))
        mel = ISIC2020[diag][2]
        rows.append(
            [
                names[i],
                patients[patient_of[i]],
                f"IL_{int(r.integers(10**7)):07d}",
                ("female", "male")[int(r.integers(2))],
                int(np.clip(5 * round(r.normal(50, 14) / 5), 10, 90)),
                SITES_2020[int(r.integers(len(SITES_2020)))],
                diag,
                "malignant" if mel else "benign",
                int(mel),
            ]
        )
    _write_csv(
        root / "isic2020/train.csv",
        [
            "image_name",
            "patient_id",
            "lesion_id",
            "sex",
            "age_approx",
            "anatom_site_general_challenge",
            "diagnosis",
            "benign_malignant",
            "target",
        ],
        rows,
    )
    return jobs, _summary("isic2020", "isic2020", Counter(diags), lambda d: ISIC2020[d][2], n, {})


def _kept_in_derm7pt(diagnosis: str) -> bool:
    """The adapter's rule (melanoma, nevi, seborrheic keratosis kept): the manifest must predict its output."""
    return not isinstance(label_of(diagnosis), str)


@dataclass
class _Case:
    diagnosis: str
    spec: LesionSpec
    views: dict[str, View]  # "clinic" / "derm"
    dup_of: int | None = None  # index of the case this one re-photographs
    dup_columns: tuple[str, ...] = ()  # which photographs are near-identical re-takes
    attempts: int = 0


def _derm7pt_cases(seed: int, n: int) -> list[_Case]:
    """Cases in case_num order; planted near-duplicates follow their source case."""
    rng = _rng(seed, 7)
    counts = _allocate(n, {d: v[0] for d, v in DERM7PT.items()})
    diags = [d for d in DERM7PT for _ in range(counts[d])]
    rng.shuffle(diags)
    cases = []
    for i, diag in enumerate(diags):
        r = _rng(seed, 7, i)
        spec = sample_lesion(DERM7PT[diag][1], r)
        derm = sample_view("dermoscopic", r)
        cases.append(_Case(diag, spec, {"derm": derm, "clinic": sample_view("clinic", r, skin=derm.skin)}))
    # derm7pt reuses one clinical photograph for several lesions (clinic-only duplicates) and lists a few
    # lesions twice (both photographs re-taken).
    kept = [i for i, c in enumerate(cases) if _kept_in_derm7pt(c.diagnosis)]
    n_both, n_clinic = max(1, round(0.015 * n)), max(1, round(0.03 * n))
    sources = rng.choice(kept, size=min(len(kept), n_both + n_clinic), replace=False)
    for k, src in enumerate(sorted(sources.tolist(), reverse=True)):
        r = _rng(seed, 7, 10**6 + k)
        base = cases[src]
        columns = ("clinic", "derm") if k < n_both else ("clinic",)
        views = {
            c: jitter_view(v, r) if c in columns else sample_view("dermoscopic", r, skin=v.skin)
            for c, v in base.views.items()
        }
        pos = int(r.integers(src + 1, len(cases) + 1))
        cases.insert(pos, _Case(base.diagnosis, base.spec, views, dup_of=src, dup_columns=columns))
        for c in cases[pos + 1 :]:  # keep dup_of pointing at the right case after the insertion
            if c.dup_of is not None and c.dup_of >= pos:
                c.dup_of += 1
    return cases


def _derm7pt(seed: int, cases: list[_Case], root: Path, res: int, workers: int,
             tally: _Tally) -> dict[str, dict[str, Any]]:
    """derm7pt release_v0 (``cases`` from ``_derm7pt_cases``): render, then re-render until near-duplicates are
    exactly the planted ones."""
    rng = _rng(seed, 7, 2)
    folder_of = [DERM7PT_FOLDERS[int(rng.integers(len(DERM7PT_FOLDERS)))] for _ in cases]
    disk_folder = {f: f.lower() if rng.random() < 0.5 else f for f in DERM7PT_FOLDERS}
    paths: dict[tuple[int, str], tuple[str, str]] = {}  # (case, column) -> (meta.csv path, disk path)
    number: Counter[str] = Counter()
    for i, folder in enumerate(folder_of):
        for column in ("clinic", "derm"):
            number[folder] += 1
            stem = f"{folder}{number[folder]:03d}"
            shout = rng.random() < 0.3
            csv_path = f"{folder}/{stem.upper()}.JPG" if shout else f"{folder}/{stem}.jpg"
            paths[(i, column)] = (csv_path, f"{disk_folder[folder]}/{stem}.jpg")

    def job(i: int, column: str) -> _Job:
        c = cases[i]
        return _Job(
            c.spec,
            c.views[column],
            (f"derm7pt/release_v0/images/{paths[(i, column)][1]}",),
            quality=90 if column == "derm" else 80,
        )

    look_of = {"derm": "dermoscopic", "clinic": "clinic"}
    kept = [i for i, c in enumerate(cases) if _kept_in_derm7pt(c.diagnosis)]
    todo = [job(i, col) for i in range(len(cases)) for col in ("clinic", "derm")]
    for attempt in range(8):
        if attempt:
            tally.plan(len(todo))  # re-takes of photographs that came out too alike (the first take: _build)
        _write_jobs(root, res, todo, workers, tally)
        todo = []
        for column in ("clinic", "derm"):
            files = [root / "derm7pt/release_v0/images" / paths[(i, column)][1] for i in kept]
            hashes = dict(zip(kept, phash_bits(files).tolist(), strict=True))
            held: list[int] = []  # images the adapter keeps, in case_num order
            for i in kept:
                c = cases[i]
                if c.dup_of is not None and column in c.dup_columns:
                    if bin(hashes[i] ^ hashes[c.dup_of]).count("1") > NEAR_DUPLICATE_BITS // 2:
                        # re-take the (possibly re-rendered) source photograph: gentler, then an exact copy
                        # (JPEG can flip a pHash bit that sits on the median even for a tiny jitter)
                        r = _rng(seed, 7, 5, i, attempt)
                        c.views[column] = jitter_view(cases[c.dup_of].views[column], r, 0.25 if attempt == 0 else 0.0)
                        todo.append(job(i, column))
                    continue
                # Distinct lesions must stay clear of the adapter's threshold (the hashes are of the very
                # files it reads; the margin absorbs other PIL/imagehash builds).
                if held and min(bin(hashes[i] ^ hashes[j]).count("1") for j in held) <= NEAR_DUPLICATE_BITS + 2:
                    r = _rng(seed, 7, 3, i, attempt)
                    c.views[column] = sample_view(look_of[column], r, skin=c.views[column].skin)
                    todo.append(job(i, column))
                held.append(i)
        if not todo:
            break
    else:
        raise RuntimeError("derm7pt demo: could not separate distinct lesions by pHash; report this seed")

    header = [
        "case_num",
        "diagnosis",
        "seven_point_score",
        "pigment_network",
        "streaks",
        "pigmentation",
        "regression_structures",
        "dots_and_globules",
        "blue_whitish_veil",
        "vascular_structures",
        "level_of_diagnostic_difficulty",
        "elevation",
        "location",
        "sex",
        "management",
        "clinic",
        "derm",
        "case_id",
        "notes",
    ]
    rows = []
    for i, c in enumerate(cases):
        r = _rng(seed, 7, 4, i)
        crit = seven_point_criteria(c.spec)
        difficulty = (
            "high" if abs(c.spec.atypia - 0.5) < 0.12 else "medium" if abs(c.spec.atypia - 0.5) < 0.3 else "low"
        )
        raised = c.spec.recipe in ("dermal_nevus", "melanoma_thick", "seborrheic_keratosis", "vascular")
        elevation = ("nodular" if c.spec.recipe == "melanoma_thick" else "palpable") if raised else "flat"
        management = (
            "excision"
            if c.diagnosis.startswith("melanoma")
            else ("clinical follow up", "no further examination", "excision")[int(r.integers(3))]
        )
        rows.append(
            [
                i + 1,
                c.diagnosis,
                *crit.values(),
                difficulty,
                elevation,
                SITES_7PT[int(r.integers(len(SITES_7PT)))],
                ("female", "male")[int(r.integers(2))],
                management,
                paths[(i, "clinic")][0],
                paths[(i, "derm")][0],
                paths[(i, "derm")][0].split("/")[1].split(".")[0].upper(),
                "",
            ]
        )
    _write_csv(root / "derm7pt/release_v0/meta/meta.csv", header, rows)

    out = {}
    dropped = Counter(str(label_of(c.diagnosis)) for c in cases if not _kept_in_derm7pt(c.diagnosis))
    for column in ("derm", "clinic"):
        kept_diag = Counter(
            c.diagnosis
            for c in cases
            if _kept_in_derm7pt(c.diagnosis) and not (c.dup_of is not None and column in c.dup_columns)
        )
        drops = dict(dropped)
        drops["near-duplicate"] = sum(c.dup_of is not None and column in c.dup_columns for c in cases)
        out[f"derm7pt-{column}"] = _summary(
            f"derm7pt-{column}", "derm7pt", kept_diag, lambda d: label_of(d) == MELANOMA, len(cases), drops
        )
    return out


def _dermofit(seed: int, n: int, root: Path) -> tuple[list[_Job], dict[str, Any]]:
    rng = _rng(seed, 1300)
    counts = _allocate(n, {k: v[0] for k, v in DERMOFIT.items()}, {"MEL": 3, "PYO": 1})
    classes = [c for c in DERMOFIT for _ in range(counts[c])]
    rng.shuffle(classes)
    serial: Counter[str] = Counter()
    jobs, lines = [], []
    for i, cls in enumerate(classes):
        r = _rng(seed, 1300, i)
        serial[cls] += 1
        lesion = f"{DERMOFIT[cls][2]}{serial[cls] * 3 + int(r.integers(3))}"
        spec = sample_lesion(_pick(r, DERMOFIT[cls][1]), r)
        folder = f"dermofit/{cls}/{lesion}"
        jobs.append(
            _Job(
                spec,
                sample_view("dermofit", r),
                (f"{folder}/{lesion}.png",),
                (("segmentation", f"{folder}/{lesion}mask.png"),),
            )
        )
        lines.append(f"{i + 1} {lesion} {cls}\n")
    (root / "dermofit").mkdir(parents=True, exist_ok=True)
    (root / "dermofit/lesionlist.txt").write_text("".join(lines), encoding="utf-8")
    carcinoma = sum(1 for c in classes if c in ("BCC", "SCC"))
    kept = Counter(c for c in classes if c not in ("BCC", "SCC"))
    return jobs, _summary("dermofit", "dermofit", kept, lambda c: c == "MEL", n, {"carcinoma": carcinoma})


# ------------------------------------------------------------------------------------------ entry point


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a ganaug demo in ``out``, or None when there is none (or something else)."""
    import json

    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


def default_workers() -> int:
    """Processes to render with: the CPUs this process may use (at most 8; rendering is CPU-bound)."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def check_params(seed: int, res: int, n_train: int) -> None:
    """Refuse demo parameters the generator cannot honour, before any work (one line naming the option)."""
    if seed < 0:
        raise InputError(f"demo --seed {seed}: must be >= 0")
    if not RES_RANGE[0] <= res <= RES_RANGE[1]:
        raise InputError(f"demo --res {res}: must be between {RES_RANGE[0]} and {RES_RANGE[1]} pixels")
    if n_train < MIN_TRAIN:
        raise InputError(f"demo --n-train {n_train}: must be at least {MIN_TRAIN} (every split needs both classes)")


def generate_demo(
    out: Path | str,
    seed: int = DEMO_DEFAULTS["seed"],
    res: int = DEMO_DEFAULTS["res"],
    n_train: int = DEMO_DEFAULTS["n_train"],
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the demo collection to ``out`` and return its manifest (also ``out/demo.json``).

    ``out`` must be missing or empty. If it holds a complete demo with the same parameters and generator
    version, that demo is reused as is (nothing is rewritten: ``make demo`` is cheap the second time); a
    demo with other parameters is replaced only with ``overwrite=True``; anything else is refused.
    Sizes derive from ``n_train`` (ISIC 2019 images): isic2020 n/4, derm7pt and dermofit n/6 each
    (at least 40, at most their real sizes), ISIC 2018 Task 2 masks for ~n/6 training images. Images are
    ``res`` pixels square (derm7pt clinical photographs 3/4 of that). ``progress(done, total)`` hears of every
    photograph rendered. The tree is built in a hidden sibling named after this process; such folders left by
    a killed render (their process is gone) are deleted first.
    """
    import multiprocessing

    if multiprocessing.parent_process() is not None and multiprocessing.current_process().name != "MainProcess":
        # A script without an ``if __name__ == "__main__":`` guard re-runs itself in each spawned renderer.
        raise RuntimeError("generate_demo called from a worker process: guard the calling script's main code")
    out = Path(out).expanduser()
    check_params(seed, res, n_train)
    params = {"seed": int(seed), "res": int(res), "n_train": int(n_train)}
    if out.exists():
        if not out.is_dir():
            raise InputError(f"{out}: exists and is not a folder")
        if any(out.iterdir()):
            old = read_manifest(out)
            if old is None:
                raise InputError(f"{out}: folder is not empty and holds no ganaug demo; pick another --out")
            if old.get("version") == VERSION and all(old.get(k) == v for k, v in params.items()):
                return old
            if not overwrite:
                raise InputError(
                    f"{out}: holds a demo with other parameters (seed={old.get('seed')}, res={old.get('res')}, "
                    f"n_train={old.get('n_train')}, version={old.get('version')}); "
                    "pass --overwrite (overwrite=True) or pick another --out"
                )
    workers = workers or default_workers()
    with built_folder(out) as tmp:
        manifest = _build(tmp, seed, res, n_train, workers, _Tally(progress))
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _scaled(n_train: int, real: Mapping[str, tuple[Any, ...]]) -> int:
    """n_train / 6, at least 40, at most the real set's size (the sum of its published per-class counts)."""
    return min(sum(v[0] for v in real.values()), max(40, round(n_train / 6)))


def _build(root: Path, seed: int, res: int, n_train: int, workers: int, tally: _Tally) -> dict[str, Any]:
    jobs, datasets = _isic2019(root, seed, n_train)
    more, datasets["isic2020"] = _isic2020(seed, max(40, round(n_train / 4)), root)
    jobs += more
    more, datasets["dermofit"] = _dermofit(seed, _scaled(n_train, DERMOFIT), root)
    jobs += more
    cases = _derm7pt_cases(seed, _scaled(n_train, DERM7PT))
    tally.plan(len(jobs) + 2 * len(cases))  # derm7pt: a dermoscopic and a clinical photograph per case
    _write_jobs(root, res, jobs, workers, tally)
    datasets.update(_derm7pt(seed, cases, root, res, workers, tally))
    return {
        "generator": GENERATOR,
        "version": VERSION,
        "seed": seed,
        "res": res,
        "n_train": n_train,
        "datasets": {k: datasets[k] for k in sorted(datasets)},
    }
