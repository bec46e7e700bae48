"""Procedural skin-lesion renderer behind the embedded demo data (no real dermoscopy data can ship).

Why procedural and why this way: later experiments (GAN training, samplers, classifier AUCs on five test
sets) are only meaningful if the demo has the structure of the real problem, so the renderer follows the
dermoscopy literature rather than drawing blobs:

* a lesion is a ``LesionSpec`` (diagnosis recipe, a latent *atypia* in [0, 1], shape harmonics, which
  dermoscopic structures it has) sampled from per-diagnosis ``Recipe``s. Melanomas draw atypia from a higher
  Beta than nevi, and every malignant cue (border irregularity, asymmetry, extra colours, atypical network,
  veil, regression) grows with atypia plus independent noise, so the classes overlap the way they do in
  ISIC rather than being trivially separable;
* the lesion is rendered as physical fields in its own frame (epidermal melanin, dermal melanin, blood,
  white/keratin, relief), which a ``View`` places into a photograph (zoom, rotation, shift) and a ``Look``
  turns into pixels with a simple Beer-Lambert skin model plus imaging effects: dermoscope vignette and hair,
  or the clinical camera's directional light, colour cast, specular highlights, blur and lower resolution;
* the renderer knows where it put each structure, so the ISIC 2018 Task 2 attribute masks and the Task 1
  segmentation are exact by construction.

Everything is numpy/scipy vectorised; PIL draws the few hundred line/disc primitives (globules, streaks,
vessels, hair). Rendering is a pure function of (spec, view, look, size): same inputs, same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import expit

# Lesion frame spans [-EXTENT, EXTENT]^2 so that big melanomas and their streaks never touch its edge.
EXTENT = 1.5
MASK_NAMES = ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")

# Beer-Lambert absorbance per unit density (R, G, B): melanin absorbs blue most (brown), blood green (red).
A_MELANIN = np.array([0.49, 0.69, 0.98])
A_BLOOD = np.array([0.15, 1.10, 0.80])
DERMAL_DERMOSCOPIC = np.array([0.36, 0.42, 0.56])  # deep melanin seen through a dermoscope: blue-grey
DERMAL_CLINICAL = np.array([0.33, 0.31, 0.34])  # ... and with the naked eye / a camera: dark grey-brown
SKIN_LIGHT = np.array([0.94, 0.77, 0.71])
SKIN_TAN = np.array([0.84, 0.62, 0.50])


@dataclass(frozen=True)
class Recipe:
    """How one diagnosis looks: ranges and probabilities that ``sample_lesion`` draws from."""

    atypia: tuple[float, float] = (1.6, 5.0)  # Beta(a, b)
    radius: tuple[float, float] = (0.30, 0.50)  # lesion frame units (image half-width is 1 at zoom 1)
    melanin: tuple[float, float] = (0.7, 1.6)
    edge: tuple[float, float] = (0.05, 0.12)  # border softness, fraction of the radius
    network: float = 0.0  # probability of a pigment network
    globules: float = 0.0
    cobblestone: bool = False  # globules packed over the lesion rather than a peripheral ring
    streaks: float = 0.0
    regular_streaks: bool = False  # Spitz/Reed starburst instead of melanoma's focal streaks
    blotches: float = 0.0  # scale of atypia-driven extra colours and pigment asymmetry
    veil: float = 0.0  # scale of P(blue-white veil) = veil * atypia^2
    regression: float = 0.0
    dermal: tuple[float, float] = (0.0, 0.0)  # blue-grey deep pigment
    dermal_centre: bool = False  # combined nevus: blue centre, brown rim
    blood: tuple[float, float] = (0.0, 0.0)  # diffuse erythema / red lesion body
    milia: float = 0.0  # milia-like cysts and comedo-like openings (seborrheic keratosis)
    cerebriform: float = 0.0  # fissures and ridges (seborrheic keratosis)
    white_centre: float = 0.0  # scar-like patch (dermatofibroma, recurrent nevus) or keratin (SCC)
    scale: float = 0.0  # white keratotic scale (AK, SCC, IEC)
    vessels: str = "absent"  # arborizing | dotted | comma | absent
    lacunae: bool = False  # red-purple lagoons (vascular lesions)
    collarette: bool = False  # white rim of a pyogenic granuloma
    strawberry: bool = False  # AK: white follicular openings on red
    nests: float = 0.0  # BCC blue-grey ovoid nests
    raised: float = 0.0  # relief: gives specular highlights in clinical photographs
    rough: float = 0.0  # moth-eaten border independent of atypia (lentigo, SK)
    yellow: float = 0.0  # waxy/keratin tint of the white component


_MEL = dict(network=0.6, globules=0.5, streaks=0.35, blotches=1.0, veil=1.0, regression=1.0)
RECIPES: dict[str, Recipe] = {
    "nevus": Recipe(
        radius=(0.28, 0.55), network=0.65, globules=0.35, streaks=0.02, blotches=0.6, veil=0.2, regression=0.3
    ),
    "clark_nevus": Recipe(
        atypia=(2.5, 3.3),
        radius=(0.34, 0.58),
        network=0.85,
        globules=0.3,
        streaks=0.04,
        blotches=0.8,
        veil=0.3,
        regression=0.5,
    ),
    "congenital_nevus": Recipe(
        atypia=(1.5, 4.5),
        radius=(0.5, 0.7),
        melanin=(0.9, 1.8),
        network=0.4,
        globules=0.8,
        cobblestone=True,
        blotches=0.5,
        raised=0.3,
    ),
    "dermal_nevus": Recipe(
        atypia=(1.2, 6.0),
        melanin=(0.25, 0.8),
        blood=(0.2, 0.45),
        network=0.1,
        globules=0.3,
        cobblestone=True,
        vessels="comma",
        raised=0.8,
    ),
    "blue_nevus": Recipe(
        atypia=(1.2, 6.0),
        radius=(0.22, 0.4),
        melanin=(0.2, 0.5),
        edge=(0.04, 0.08),
        dermal=(0.6, 0.85),
    ),
    "combined_nevus": Recipe(network=0.5, globules=0.3, dermal=(0.45, 0.7), dermal_centre=True, blotches=0.4),
    "recurrent_nevus": Recipe(
        atypia=(3.0, 3.0),
        network=0.5,
        blotches=1.0,
        white_centre=0.45,
        regression=0.6,
    ),
    "spitz_nevus": Recipe(
        atypia=(2.5, 3.5),
        radius=(0.26, 0.45),
        melanin=(1.4, 2.4),
        edge=(0.03, 0.07),
        streaks=0.95,
        regular_streaks=True,
        globules=0.4,
        dermal=(0.1, 0.3),
        dermal_centre=True,
    ),
    "melanoma_in_situ": Recipe(atypia=(3.2, 3.4), radius=(0.32, 0.55), melanin=(0.8, 1.6), **_MEL),
    "melanoma": Recipe(atypia=(4.0, 3.0), radius=(0.36, 0.62), melanin=(0.9, 1.8), **_MEL),
    "melanoma_thick": Recipe(
        atypia=(5.0, 2.2),
        radius=(0.42, 0.68),
        melanin=(1.0, 2.0),
        blood=(0.1, 0.35),
        raised=0.6,
        **{**_MEL, "veil": 1.4},
    ),
    "melanoma_metastasis": Recipe(
        atypia=(5.0, 2.0),
        radius=(0.3, 0.5),
        melanin=(0.6, 1.2),
        dermal=(0.4, 0.7),
        raised=0.7,
        **{**_MEL, "network": 0.2},
    ),
    "seborrheic_keratosis": Recipe(
        radius=(0.4, 0.65),
        melanin=(0.6, 1.9),
        edge=(0.015, 0.04),
        milia=0.8,
        cerebriform=0.7,
        raised=0.5,
        rough=0.012,
        yellow=0.5,
    ),
    "lentigo": Recipe(
        atypia=(1.5, 5.0),
        radius=(0.35, 0.6),
        melanin=(0.4, 0.9),
        edge=(0.03, 0.08),
        network=0.75,
        rough=0.015,
    ),
    "lichenoid_keratosis": Recipe(
        melanin=(0.2, 0.5),
        blood=(0.3, 0.5),
        regression=8.0,
        edge=(0.08, 0.15),
    ),
    "actinic_keratosis": Recipe(
        radius=(0.4, 0.7),
        melanin=(0.0, 0.3),
        edge=(0.12, 0.25),
        blood=(0.45, 0.9),
        scale=0.7,
        strawberry=True,
        rough=0.012,
    ),
    "dermatofibroma": Recipe(
        radius=(0.22, 0.38),
        melanin=(0.3, 0.7),
        blood=(0.2, 0.4),
        white_centre=0.7,
        network=1.0,
        raised=0.4,
    ),
    "vascular": Recipe(
        radius=(0.2, 0.4),
        melanin=(0.0, 0.0),
        edge=(0.02, 0.05),
        blood=(0.5, 0.8),
        lacunae=True,
        raised=0.3,
    ),
    "pyogenic_granuloma": Recipe(
        radius=(0.25, 0.4),
        melanin=(0.0, 0.0),
        edge=(0.02, 0.04),
        blood=(1.6, 2.2),
        collarette=True,
        raised=1.0,
    ),
    "bcc": Recipe(
        radius=(0.3, 0.55),
        melanin=(0.0, 0.2),
        blood=(0.25, 0.45),
        vessels="arborizing",
        nests=0.6,
        raised=0.4,
        white_centre=0.15,
    ),
    "scc": Recipe(
        radius=(0.3, 0.55),
        melanin=(0.0, 0.1),
        blood=(0.5, 0.8),
        vessels="dotted",
        white_centre=0.8,
        scale=0.5,
        raised=0.6,
        yellow=0.6,
    ),
    "iec": Recipe(
        radius=(0.45, 0.7),
        melanin=(0.0, 0.2),
        edge=(0.05, 0.1),
        blood=(0.6, 0.85),
        vessels="dotted",
        scale=0.6,
        rough=0.02,
    ),
    "faint_macule": Recipe(
        atypia=(1.4, 6.0),
        radius=(0.15, 0.3),
        melanin=(0.3, 0.8),
        edge=(0.08, 0.15),
        network=0.3,
    ),
}


@dataclass(frozen=True)
class LesionSpec:
    """One lesion: what it has (read by metadata writers) and the seed of how exactly it looks."""

    recipe: str
    atypia: float
    seed: int
    radius: float
    aspect: float  # ellipse axis ratio >= 1
    orientation: float
    harmonics: tuple[tuple[int, float, float], ...]  # (k, amplitude, phase) of the border
    edge: float
    melanin: float
    centre_dark: float  # two browns: >0 darker centre, <0 darker rim
    asym_angle: float  # where the atypical features cluster
    asymmetry: float
    network: str  # absent | typical | atypical
    globules: str  # absent | regular | irregular
    streaks: str  # absent | regular | irregular
    colours: tuple[str, ...]  # extra colours beyond the base brown: dark, light, red, blue, white
    veil: bool
    regression: str  # absent | white areas | blue areas | combinations (derm7pt's categories)
    vessels: str  # absent | arborizing | dotted | comma | linear irregular
    dermal: float
    blood: float


def sample_lesion(recipe_key: str, rng: np.random.Generator) -> LesionSpec:
    """Draw a lesion of diagnosis recipe ``recipe_key``; malignant cues scale with the latent atypia."""
    r = RECIPES[recipe_key]
    t = float(rng.beta(*r.atypia))
    amp_scale = 0.012 + 0.10 * t**1.2 * (1.0 if r.blotches else 0.3)
    harmonics = [(1, 0.10 * t * r.blotches, float(rng.uniform(0, 2 * math.pi)))]
    for k in range(3, 9):
        harmonics.append((k, abs(float(rng.normal(0, amp_scale * 3 / k))), float(rng.uniform(0, 2 * math.pi))))
    rough = 0.004 + 0.02 * t * r.blotches + r.rough
    for k in range(9, 17):
        harmonics.append((k, abs(float(rng.normal(0, rough * 9 / k))), float(rng.uniform(0, 2 * math.pi))))

    def atypical(p_present: float, threshold: float = 0.55) -> tuple[bool, bool]:
        present = bool(rng.random() < p_present)
        return present, present and bool(t + rng.normal(0, 0.12) > threshold)

    has_net, atyp_net = atypical(r.network)
    has_glob, atyp_glob = atypical(r.globules)
    has_streaks = bool(rng.random() < (r.streaks if r.regular_streaks else r.streaks * (0.3 + t)))
    colours = tuple(
        name
        for name, p in (("dark", t), ("light", 0.3 + 0.5 * t), ("red", 0.35 * t), ("blue", t**1.5 * 0.6))
        if rng.random() < p * r.blotches
    )
    return LesionSpec(
        recipe=recipe_key,
        atypia=t,
        seed=int(rng.integers(2**63)),
        radius=float(rng.uniform(*r.radius) * (1 + 0.1 * t * r.blotches)),
        aspect=float(1 + abs(rng.normal(0, 0.12)) + 0.15 * t),
        orientation=float(rng.uniform(0, math.pi)),
        harmonics=tuple(harmonics),
        edge=float(rng.uniform(*r.edge) * (1 - 0.4 * t * r.blotches)),
        melanin=float(rng.uniform(*r.melanin)),
        centre_dark=float(rng.uniform(-0.3, 0.8)),
        asym_angle=float(rng.uniform(0, 2 * math.pi)),
        asymmetry=float(r.blotches * t * rng.uniform(0.5, 1.5)),
        network="absent" if not has_net else ("atypical" if atyp_net else "typical"),
        globules="absent" if not has_glob else ("irregular" if atyp_glob else "regular"),
        streaks="absent" if not has_streaks else ("regular" if r.regular_streaks else "irregular"),
        colours=colours,
        veil=bool(rng.random() < r.veil * t**2),
        regression=str(rng.choice(["white areas", "blue areas", "combinations"]))
        if rng.random() < min(1.0, r.regression * t**2)
        else "absent",
        vessels="linear irregular" if "red" in colours and t > 0.65 else r.vessels,
        dermal=float(rng.uniform(*r.dermal)),
        blood=float(rng.uniform(*r.blood)),
    )


def seven_point_criteria(spec: LesionSpec) -> dict[str, str | int]:
    """derm7pt's meta.csv criteria for a spec, and the 7-point checklist score they add up to."""
    pigmentation = "absent"
    if spec.melanin > 0.2:
        irregular = "dark" in spec.colours or spec.asymmetry > 0.5
        pigmentation = ("localized " if spec.asymmetry > 0.4 else "diffuse ") + (
            "irregular" if irregular else "regular"
        )
    score = (
        2 * (spec.network == "atypical")
        + 2 * spec.veil
        + 2 * (spec.vessels == "linear irregular")
        + (spec.streaks == "irregular")
        + pigmentation.endswith("irregular")
        + (spec.globules == "irregular")
        + (spec.regression != "absent")
    )
    return {
        "seven_point_score": int(score),
        "pigment_network": spec.network,
        "streaks": spec.streaks,
        "pigmentation": pigmentation,
        "regression_structures": spec.regression,
        "dots_and_globules": spec.globules,
        "blue_whitish_veil": "present" if spec.veil else "absent",
        "vascular_structures": spec.vessels,
    }


@dataclass(frozen=True)
class Look:
    """An imaging modality: how a lesion becomes a photograph (ranges sampled per image by ``sample_view``)."""

    name: str
    clinical: bool = False
    zoom: tuple[float, float] = (0.75, 1.25)  # lesion frame -> image scale
    shift: float = 0.08
    vignette: float = 0.35  # P(dermoscope's black circular border)
    hair: float = 0.35
    falloff: tuple[float, float] = (0.05, 0.25)  # radial illumination loss
    gradient: tuple[float, float] = (0.0, 0.0)  # directional lighting strength
    cast: float = 0.03  # per-channel white-balance error (std)
    cast_bias: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: tuple[float, float] = (0.2, 0.5)  # gaussian sigma in output pixels
    noise: float = 1.5  # sensor noise std in 8-bit units
    scale: float = 1.0  # written resolution relative to the demo's res
    lesion_blur: float = 0.0  # lesion-frame blur: a camera does not resolve the network
    gloss: float = 0.0  # specular highlights on raised lesions
    skin: tuple[float, float] = (0.0, 0.7)  # light..tan skin tone range
    brightness: float = 1.0
    backdrop: float = 0.0  # P(the frame catches the body's outline: clothing or room behind it)


LOOKS: dict[str, Look] = {
    "dermoscopic": Look("dermoscopic"),
    # ISIC 2020: whole-body-photography era dermoscopy, more zoomed out, fewer vignettes, brighter.
    "isic2020": Look("isic2020", zoom=(0.7, 1.05), vignette=0.12, brightness=1.04, skin=(0.0, 0.5)),
    # derm7pt's clinical photographs: camera under room light.
    "clinic": Look(
        "clinic",
        clinical=True,
        zoom=(0.4, 0.6),
        shift=0.22,
        vignette=0.0,
        hair=0.2,
        falloff=(0.0, 0.05),
        gradient=(0.15, 0.35),
        cast=0.06,
        cast_bias=(1.06, 0.98, 0.86),
        blur=(0.9, 1.6),
        noise=3.0,
        scale=0.75,
        lesion_blur=0.05,
        gloss=0.8,
        backdrop=0.5,
        skin=(0.1, 0.9),
    ),
    # Dermofit: clinical but with a ring flash: even light, sharper, little cast.
    "dermofit": Look(
        "dermofit",
        clinical=True,
        zoom=(0.45, 0.7),
        vignette=0.0,
        hair=0.15,
        falloff=(0.0, 0.05),
        gradient=(0.0, 0.08),
        cast=0.025,
        cast_bias=(1.02, 1.0, 0.97),
        blur=(0.4, 0.8),
        noise=2.0,
        lesion_blur=0.035,
        gloss=0.6,
        skin=(0.0, 0.6),
    ),
}


@dataclass(frozen=True)
class View:
    """One photograph of a lesion: geometry, skin, lighting and artefacts (all sampled from a ``Look``)."""

    look: str
    seed: int  # skin texture, hair, sensor noise
    zoom: float
    angle: float
    shift: tuple[float, float]
    skin: tuple[float, float, float]
    hairs: int
    vignette: float  # radius of the dermoscope circle; 0 = none
    vignette_centre: tuple[float, float]
    falloff: float
    gradient: tuple[float, float]
    cast: tuple[float, float, float]
    blur: float
    gain: float = 1.0
    backdrop: tuple[float, float] | None = None  # (direction, distance from centre) of the body's outline
    backdrop_rgb: tuple[float, float, float] = (0.2, 0.2, 0.2)


def sample_view(look_name: str, rng: np.random.Generator, skin: tuple[float, float, float] | None = None) -> View:
    """A random photograph under ``look_name``; pass ``skin`` to photograph the same patient again."""
    lk = LOOKS[look_name]
    if skin is None:
        tone = SKIN_LIGHT + (SKIN_TAN - SKIN_LIGHT) * rng.uniform(*lk.skin)
        skin = tuple(float(c) for c in np.clip(tone + rng.normal(0, 0.015, 3), 0.3, 1.0))
    grad = rng.uniform(*lk.gradient)
    g_ang = rng.uniform(0, 2 * math.pi)
    cast = np.array(lk.cast_bias) * (1 + rng.normal(0, lk.cast, 3))
    has_vignette = rng.random() < lk.vignette
    return View(
        look=look_name,
        seed=int(rng.integers(2**63)),
        zoom=float(rng.uniform(*lk.zoom)),
        angle=float(rng.uniform(0, 2 * math.pi)),
        shift=(float(rng.normal(0, lk.shift)), float(rng.normal(0, lk.shift))),
        skin=skin,
        hairs=int(rng.integers(2, 12)) if rng.random() < lk.hair else 0,
        vignette=float(rng.uniform(0.95, 1.25)) if has_vignette else 0.0,
        vignette_centre=(float(rng.normal(0, 0.05)), float(rng.normal(0, 0.05))),
        falloff=float(rng.uniform(*lk.falloff)),
        gradient=(float(grad * math.cos(g_ang)), float(grad * math.sin(g_ang))),
        cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        blur=float(rng.uniform(*lk.blur)),
        gain=float(lk.brightness),
        backdrop=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.6, 0.95)))
        if rng.random() < lk.backdrop
        else None,
        backdrop_rgb=tuple(float(c) for c in rng.uniform(0.05, 0.6) * rng.uniform(0.6, 1.0, 3)),
    )


def jitter_view(view: View, rng: np.random.Generator, amount: float = 1.0) -> View:
    """The same photograph re-taken a moment later: sub-pixel shift, tiny rotation and exposure change."""
    return replace(
        view,
        shift=(
            view.shift[0] + float(rng.normal(0, 0.008 * amount)),
            view.shift[1] + float(rng.normal(0, 0.008 * amount)),
        ),
        angle=view.angle + float(rng.normal(0, 0.01 * amount)),
        gain=view.gain * float(1 + rng.normal(0, 0.015 * amount)),
    )


@dataclass
class Rendered:
    image: np.ndarray  # (H, W, 3) uint8
    masks: dict[str, np.ndarray]  # "segmentation" and MASK_NAMES -> (H, W) bool


# ----------------------------------------------------------------------------------------------- fields


def _noise(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """Smooth gaussian noise with unit standard deviation (correlation length ``sigma_px``)."""
    f = ndimage.gaussian_filter(rng.standard_normal((n, n)), max(sigma_px, 0.5), mode="wrap")
    return f / (f.std() + 1e-9)


class _Canvas:
    """Lesion-frame grid and PIL drawing helpers in lesion units."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.px = n / (2 * EXTENT)  # pixels per unit
        ax = (np.arange(n) + 0.5) / self.px - EXTENT
        self.x, self.y = np.meshgrid(ax, ax)

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        return (x + EXTENT) * self.px, (y + EXTENT) * self.px

    def discs(self, centres: np.ndarray, radii: np.ndarray, grow: float = 1.0) -> np.ndarray:
        img = Image.new("L", (self.n, self.n))
        draw = ImageDraw.Draw(img)
        for (x, y), r in zip(centres, radii, strict=True):
            cx, cy = self.to_px(x, y)
            rp = max(r * grow * self.px, 0.6)
            draw.ellipse((cx - rp, cy - rp, cx + rp, cy + rp), fill=255)
        return np.asarray(img, dtype=np.float32) / 255.0

    def lines(self, segments: list[tuple[float, float, float, float, float]]) -> np.ndarray:
        """Segments (x0, y0, x1, y1, width in units) with round joints."""
        img = Image.new("L", (self.n, self.n))
        draw = ImageDraw.Draw(img)
        for x0, y0, x1, y1, w in segments:
            wp = max(1, round(w * self.px))
            draw.line((*self.to_px(x0, y0), *self.to_px(x1, y1)), fill=255, width=wp, joint="curve")
        return np.asarray(img, dtype=np.float32) / 255.0


def _border_radius(spec: LesionSpec, theta: np.ndarray) -> np.ndarray:
    """r(theta): an ellipse times a Fourier series (small for benign, large and odd-ordered when atypical)."""
    a = math.sqrt(spec.aspect)
    c, s = np.cos(theta - spec.orientation), np.sin(theta - spec.orientation)
    r = spec.radius / np.sqrt((c * a) ** 2 + (s / a) ** 2)
    wobble = sum(amp * np.cos(k * theta + ph) for k, amp, ph in spec.harmonics)
    return r * np.clip(1 + wobble, 0.35, None)


def _worley_gap(rng: np.random.Generator, cv: _Canvas, spacing: float, jitter: float, drop: float) -> np.ndarray:
    """Distance to the nearest cell wall of a jittered hexagonal Voronoi tiling, in units of ``spacing``."""
    ys = np.arange(-EXTENT - spacing, EXTENT + spacing, spacing * math.sqrt(3) / 2)
    xs = np.arange(-EXTENT - spacing, EXTENT + spacing, spacing)
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + (np.arange(len(ys))[:, None] % 2) * spacing / 2
    pts = np.column_stack([gx.ravel(), gy.ravel()]) + rng.normal(0, jitter * spacing, (gx.size, 2))
    pts = pts[rng.random(len(pts)) >= drop]
    d, _ = cKDTree(pts).query(np.column_stack([cv.x.ravel(), cv.y.ravel()]), k=2)
    return ((d[:, 1] - d[:, 0]) / spacing).reshape(cv.x.shape)


def _polar_points(spec: LesionSpec, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
    r = _border_radius(spec, theta) * u
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def lesion_fields(spec: LesionSpec, n: int) -> dict[str, np.ndarray]:
    """The lesion's physical fields and structure masks on an n x n lesion-frame grid."""
    rec = RECIPES[spec.recipe]
    rng = np.random.default_rng(spec.seed)
    cv = _Canvas(n)
    rho, theta = np.hypot(cv.x, cv.y), np.arctan2(cv.y, cv.x)
    u = rho / _border_radius(spec, theta)
    body = expit((1 - u) / max(spec.edge, 0.01))
    inside = body > 0.5
    px_r = spec.radius * cv.px  # lesion radius in pixels

    def blob(scale: float, coverage: float) -> np.ndarray:
        """A soft patch covering roughly ``coverage`` of the lesion, pushed towards the asymmetric side."""
        nz = _noise(rng, n, scale * px_r)
        drift = spec.asymmetry * (cv.x * math.cos(spec.asym_angle) + cv.y * math.sin(spec.asym_angle)) / spec.radius
        f = nz + drift
        thr = np.quantile(f[inside], 1 - coverage) if inside.any() else 0.0
        return expit((f - thr) / 0.25) * body

    profile = 1 + spec.centre_dark * np.exp(-((u / 0.55) ** 2))
    mel = spec.melanin * body * profile * (1 + 0.12 * _noise(rng, n, 0.15 * px_r))
    derm = np.zeros_like(body)
    blood = spec.blood * body
    white = np.zeros_like(body)
    white_rgb = np.array([0.93, 0.90, 0.87]) + rec.yellow * np.array([0.02, 0.02, -0.15])
    height = rec.raised * body * np.clip(1 - u**2, 0, 1)
    masks = {name: np.zeros_like(body) for name in MASK_NAMES}

    for colour in spec.colours:
        patch = blob(0.35, float(rng.uniform(0.12, 0.35)))
        if colour == "dark":
            mel += float(rng.uniform(1.0, 2.0)) * patch
        elif colour == "light":
            mel *= 1 - 0.6 * patch
        elif colour == "red":
            blood += 0.6 * patch
        else:  # blue-grey
            derm += 0.5 * patch
    if spec.dermal:
        derm += spec.dermal * (np.exp(-((u / 0.6) ** 2)) if rec.dermal_centre else np.ones_like(u)) * body

    if spec.network != "absent":
        typical = spec.network == "typical"
        spacing = float(rng.uniform(0.09, 0.13))
        gap = _worley_gap(rng, cv, spacing, 0.12 if typical else 0.4, 0.0 if typical else 0.15)
        width = 0.14 if typical else 0.14 * (1 + 0.8 * expit(2 * _noise(rng, n, 0.1 * px_r)))
        lines = np.exp(-((gap / width) ** 2))
        if typical:
            region = body * (1 - expit((u - 0.8) / 0.08))  # fades out regularly towards the periphery
            if rec.white_centre:
                region *= expit((u - 0.5) / 0.08)  # dermatofibroma: delicate peripheral network
        else:
            region = body * expit((_noise(rng, n, 0.3 * px_r) + 0.4) / 0.2)  # patchy, abrupt
            lines *= expit((_noise(rng, n, 0.05 * px_r) + 0.6) / 0.2)  # broken lines
        mel += 0.9 * spec.melanin * lines * region + (0.0 if typical else 0.5 * lines * region)
        masks["pigment_network"] = region

    if spec.atypia > 0.55 and rec.blotches and rng.random() < 0.5 * spec.atypia:
        region = blob(0.3, float(rng.uniform(0.1, 0.25)))
        gap = _worley_gap(rng, cv, float(rng.uniform(0.12, 0.17)), 0.35, 0.1)
        lines = np.exp(-((gap / 0.18) ** 2))
        mel = mel * (1 - 0.65 * lines * region) + 0.4 * (1 - lines) * region
        masks["negative_network"] = region

    if spec.globules != "absent":
        if spec.globules == "regular":
            if rec.cobblestone:
                k = int(rng.integers(30, 70))
                pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), np.sqrt(rng.uniform(0, 0.7, k)))
                rad = np.full(k, float(rng.uniform(0.03, 0.045)))
            else:
                k = int(rng.integers(10, 24))
                ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 2 * np.pi)
                pts = _polar_points(spec, ang, np.full(k, float(rng.uniform(0.75, 0.88))))
                rad = np.full(k, float(rng.uniform(0.022, 0.035)))
            strength = 1.0
        else:
            k = int(rng.integers(6, 30))
            ang = spec.asym_angle + rng.normal(0, rng.uniform(0.5, 1.2), k)
            pts = _polar_points(spec, ang, rng.uniform(0.2, 1.05, k))
            rad = np.clip(rng.lognormal(math.log(0.025), 0.5, k), 0.01, 0.07)
            strength = 1.6
        dots = cv.discs(pts, rad)
        mel += strength * dots
        if spec.globules == "irregular":
            derm += 0.2 * dots
        masks["globules"] = cv.discs(pts, rad, grow=1.4)

    if spec.streaks != "absent":
        if spec.streaks == "regular":
            k = int(rng.integers(20, 34))
            ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 2 * np.pi)
            length = np.full(k, float(rng.uniform(1.15, 1.3)))
        else:
            k = int(rng.integers(4, 14))
            ang = spec.asym_angle + rng.uniform(-0.9, 0.9, k)
            length = rng.uniform(1.08, 1.35, k)
        r_b = _border_radius(spec, ang)
        segs = [
            (0.8 * r * math.cos(a), 0.8 * r * math.sin(a), L * r * math.cos(a), L * r * math.sin(a), 0.025)
            for a, r, L in zip(ang, r_b, length, strict=True)
        ]
        tips = np.column_stack([length * r_b * np.cos(ang), length * r_b * np.sin(ang)])
        streak = np.maximum(cv.lines(segs), cv.discs(tips, np.full(k, 0.022)))
        mel += 1.5 * spec.melanin * streak
        body = np.maximum(body, 0.7 * streak)
        masks["streaks"] = ndimage.grey_dilation(streak, size=3)

    if spec.veil:
        veil = blob(0.4, float(rng.uniform(0.15, 0.35)))
        derm += 0.65 * veil
        white += 0.15 * veil
    if spec.regression != "absent":  # scar-like white areas and/or blue-grey peppering
        reg = blob(0.3, float(rng.uniform(0.1, 0.3)))
        if spec.regression != "blue areas":
            white += 0.55 * reg
        if spec.regression != "white areas":
            pepper = (_noise(rng, n, 0.6) > 1.3).astype(np.float64)
            derm += (0.25 + 0.4 * pepper) * reg
    if rec.white_centre:
        white += rec.white_centre * np.exp(-((u / 0.45) ** 2)) * body
    if rec.milia:
        k = int(rng.integers(2, 12))
        pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), np.sqrt(rng.uniform(0, 0.6, k)))
        rad = rng.uniform(0.015, 0.035, k)
        white += 0.85 * cv.discs(pts, rad)
        masks["milia_like_cyst"] = cv.discs(pts, rad, grow=1.4)
        k = int(rng.integers(2, 10))
        mel += 2.0 * cv.discs(
            _polar_points(spec, rng.uniform(0, 2 * np.pi, k), rng.uniform(0, 0.8, k)), rng.uniform(0.012, 0.03, k)
        )
    if rec.cerebriform and rng.random() < rec.cerebriform:
        a = rng.uniform(0, np.pi)
        ridges = np.sin(30 * (cv.x * math.cos(a) + cv.y * math.sin(a)) + 4 * _noise(rng, n, 0.2 * px_r))
        mel += 0.8 * spec.melanin * expit((ridges - 0.6) / 0.1) * body
    if rec.scale:
        white += rec.scale * expit((_noise(rng, n, 1.5) - 0.8) / 0.2) * body
    if rec.strawberry:
        k = int(rng.integers(25, 60))
        pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), np.sqrt(rng.uniform(0, 0.8, k)))
        white += 0.6 * cv.discs(pts, np.full(k, 0.02))
    if rec.lacunae:
        k = int(rng.integers(5, 14))
        pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), np.sqrt(rng.uniform(0, 0.65, k)))
        lac = cv.discs(pts, rng.uniform(0.05, 0.11, k) * spec.radius / 0.3)
        blood += 1.6 * lac * body
        derm += 0.3 * lac * body
        white += 0.25 * (1 - lac) * body
    if rec.collarette:
        white += 0.6 * np.exp(-(((u - 1.0) / 0.08) ** 2))
    if rec.nests:
        k = int(rng.integers(2, 6))
        pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), rng.uniform(0.2, 0.8, k))
        derm += rec.nests * cv.discs(pts, rng.uniform(0.04, 0.08, k))
    if spec.vessels != "absent":
        blood += 1.3 * _vessels(spec.vessels, spec, cv, rng) * body

    return {
        "body": body,
        "mel": mel,
        "derm": derm,
        "blood": blood,
        "white": white,
        "height": height,
        "white_rgb": white_rgb,
        **masks,
    }


def _vessels(kind: str, spec: LesionSpec, cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Arborizing trees (BCC), dotted/glomerular clusters (SCC, IEC), short commas (dermal nevus) or the
    linear irregular vessels of thick melanomas."""
    if kind == "dotted":
        k = int(rng.integers(20, 60))
        pts = _polar_points(spec, rng.uniform(0, 2 * np.pi, k), np.sqrt(rng.uniform(0, 0.85, k)))
        return cv.discs(pts, np.full(k, 0.013))
    segs: list[tuple[float, float, float, float, float]] = []
    if kind == "comma":
        for x, y in _polar_points(spec, rng.uniform(0, 2 * np.pi, 8), rng.uniform(0, 0.7, 8)):
            a = rng.uniform(0, 2 * np.pi)
            segs.append((x, y, x + 0.06 * math.cos(a), y + 0.06 * math.sin(a), 0.012))
        return cv.lines(segs)
    if kind == "linear irregular":
        for x, y in _polar_points(spec, spec.asym_angle + rng.normal(0, 0.8, 10), rng.uniform(0.1, 0.9, 10)):
            a = rng.uniform(0, 2 * np.pi)
            for _ in range(3):  # short zig-zag polylines of uneven calibre
                a += rng.normal(0, 0.8)
                x1, y1 = x + 0.05 * math.cos(a), y + 0.05 * math.sin(a)
                segs.append((x, y, x1, y1, float(rng.uniform(0.008, 0.018))))
                x, y = x1, y1
        return cv.lines(segs)
    for x, y in _polar_points(spec, rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.1, 0.6, 3)):
        stack = [(float(x), float(y), float(rng.uniform(0, 2 * np.pi)), 0.028, 0)]
        while stack:
            x0, y0, a, w, depth = stack.pop()
            length = 0.25 * spec.radius * (0.75**depth)
            x1, y1 = x0 + length * math.cos(a), y0 + length * math.sin(a)
            segs.append((x0, y0, x1, y1, w))
            if depth < 3:
                for da in (-0.6, 0.5):
                    stack.append((x1, y1, a + da + float(rng.normal(0, 0.2)), w * 0.7, depth + 1))
    return cv.lines(segs)


# --------------------------------------------------------------------------------------------- render


def render(spec: LesionSpec, view: View, res: int) -> Rendered:
    """Photograph ``spec`` under ``view`` at ``res`` x ``LOOKS[view.look].scale`` pixels (square)."""
    look = LOOKS[view.look]
    out = max(8, round(res * look.scale))
    so = 2 * out  # supersampled output grid, averaged 2x2 at the end
    n = 2 * max(res, 32)
    f = lesion_fields(spec, n)
    white_rgb = f.pop("white_rgb")
    if look.lesion_blur:
        sig = look.lesion_blur * n / (2 * EXTENT)
        for key in ("mel", "derm", "blood", "white"):
            f[key] = ndimage.gaussian_filter(f[key], sig)

    # Place the lesion: pixel p (image units, [-1, 1]) shows lesion point q = R(-angle)(p - shift) / zoom.
    ax = (np.arange(so) + 0.5) / so * 2 - 1
    px, py = np.meshgrid(ax, ax)
    c, s = math.cos(view.angle), math.sin(view.angle)
    dx, dy = px - view.shift[0], py - view.shift[1]
    qx, qy = (c * dx + s * dy) / view.zoom, (-s * dx + c * dy) / view.zoom
    coords = np.stack([(qy + EXTENT) * n / (2 * EXTENT) - 0.5, (qx + EXTENT) * n / (2 * EXTENT) - 0.5])
    g = {
        k: ndimage.map_coordinates(v, coords, order=1, cval=0.0) if v.any() else np.zeros((so, so))
        for k, v in f.items()
    }

    rng = np.random.default_rng(view.seed)
    skin = np.array(view.skin) * (1 + 0.05 * _noise(rng, so, so / 8) + 0.02 * _noise(rng, so, so / 40))[..., None]
    skin_blood = 0.08 * expit(_noise(rng, so, so / 10))
    if look.clinical:  # pores and fine skin lines that a camera sees and immersion dermoscopy washes out
        skin_blood = skin_blood + 0.1 * (_noise(rng, so, 0.7) > 2.0)
    absorb = g["mel"][..., None] * A_MELANIN + (g["blood"] + skin_blood)[..., None] * A_BLOOD
    img = skin * np.exp(-absorb)
    dermal = DERMAL_CLINICAL if look.clinical else DERMAL_DERMOSCOPIC
    d = np.clip(g["derm"], 0, 0.9)[..., None]
    img = img * (1 - d) + dermal * d
    w = np.clip(g["white"], 0, 0.9)[..., None]
    img = img * (1 - w) + white_rgb * w

    r2 = px**2 + py**2
    light = view.gain * (1 - view.falloff * r2 / 2) * (1 + view.gradient[0] * px + view.gradient[1] * py)
    img = img * light[..., None] * np.array(view.cast)
    if look.gloss:
        spots = expit((_noise(rng, so, 1.2) - 1.3) / 0.15) * look.gloss * np.clip(g["height"], 0, 1)
        img = img + spots[..., None] * (1 - img)
    if view.backdrop:
        a, dist = view.backdrop
        beyond = expit(((px * math.cos(a) + py * math.sin(a)) - dist) / 0.02)[..., None]
        img = img * (1 - beyond) + np.array(view.backdrop_rgb) * beyond
    if view.hairs:
        img = _hair(img, view.hairs, rng)
    if view.vignette:
        rv = np.hypot(px - view.vignette_centre[0], py - view.vignette_centre[1])
        img = img * expit((view.vignette - rv) / 0.015)[..., None]
    if view.blur:
        img = ndimage.gaussian_filter(img, (2 * view.blur, 2 * view.blur, 0))

    img = img.reshape(out, 2, out, 2, 3).mean(axis=(1, 3)) * 255 + rng.normal(0, look.noise, (out, out, 3))
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def down(m: np.ndarray) -> np.ndarray:
        return m.reshape(out, 2, out, 2).mean(axis=(1, 3)) >= 0.5

    masks = {"segmentation": down(g["body"])}
    masks.update({name: down(g[name]) & masks["segmentation"] for name in MASK_NAMES})
    masks["streaks"] = down(g["streaks"])
    return Rendered(image=image, masks=masks)


def _hair(img: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Dark curved hairs (quadratic Bezier curves) across the image."""
    so = img.shape[0]
    layer = Image.new("L", (so, so))
    draw = ImageDraw.Draw(layer)
    t = np.linspace(0, 1, 24)[:, None]
    for _ in range(count):
        p0, p1, p2 = rng.uniform(-0.2, 1.2, (3, 2)) * so
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        draw.line([tuple(p) for p in curve], fill=int(rng.integers(120, 230)), width=1)
    h = (np.asarray(layer, dtype=np.float32) / 255.0)[..., None]
    colour = np.array([0.12, 0.08, 0.06]) * rng.uniform(0.5, 1.5)
    return img * (1 - h) + colour * h
