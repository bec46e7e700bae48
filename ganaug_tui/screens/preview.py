"""Preview: the synthetic images themselves — a pool's images per class, real and synthetic side by side (the
training images of the split the GAN learnt from), a GAN's sample grid at each checkpoint (scrub through them with
the checkpoint's FID beside it), a sampler's picks (first vs last ranks with their scores, the diverse sampler's
rejects beside the image they duplicate) and an audit's closest synthetic/real pairs with their distances.

Every image is read in a thread worker (``ganaug_tui.reads``); the screen only draws what comes back."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Select, Static

from engine.errors import InputError
from ganaug_tui import reads
from ganaug_tui.messages import Loaded
from ganaug_tui.reads import AuditView, GridFrames, PicksView, PoolPage, Previewable, RealPage, Snapshot
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.widgets.picture import picture

PER_PAGE = 8  # images per class on one page of a pool
SIDE_BY_SIDE = 4  # per class and side when real and synthetic are shown together
PICKS = 6  # per class and end of a selection's ranking; rejects shown
PAIRS = 8  # an audit's closest pairs shown
MODES = ("pool", "real vs synthetic", "sample grids", "picks", "audit")


def available(src: Previewable, mode: str) -> bool:
    """Whether ``src`` has something to show in ``mode`` (a pool shows the grids of the GAN that made it)."""
    return {"pool": src.pool, "real vs synthetic": src.pool, "sample grids": bool(src.grids) or src.pool,
            "picks": src.selection, "audit": src.audit}[mode]


class PreviewScreen(GanaugScreen):
    AUTO_FOCUS = ""  # keys 1-5 and the screen's own keys work on arrival; tab or its key reaches a picker
    MODE = "preview"
    BINDINGS = [
        Binding("m", "mode", "View", id="preview.mode",
                tooltip="Switch between what the run has: pool, real vs synthetic, sample grids, picks, audit"),
        Binding("right,right_square_bracket", "step(1)", "Next", id="preview.next",
                tooltip="Next page of the pool, or the next checkpoint's grid"),
        Binding("left,left_square_bracket", "step(-1)", "Previous", id="preview.prev",
                tooltip="Previous page of the pool, or the previous checkpoint's grid"),
        Binding("s", "choose_source", "Source", id="preview.source",
                tooltip="Pick the run to look at (pool, GAN, selection, audited run)"),
    ]
    DEFAULT_CSS = """
    PreviewScreen #bar { height: 1; padding: 0 1; }
    PreviewScreen #source { width: 1fr; max-width: 70; }
    PreviewScreen #mode { width: auto; margin-left: 2; color: $accent; }
    PreviewScreen #caption { height: auto; padding: 0 1; color: $text-muted; }
    PreviewScreen #pictures { height: 1fr; padding: 0 1; }
    PreviewScreen .class-title { height: 1; text-style: bold; margin-top: 1; }
    PreviewScreen .pic { width: 1fr; height: auto; }
    PreviewScreen .pair { height: auto; }
    PreviewScreen .pair > Vertical { width: 1fr; height: auto; margin-right: 2; }
    PreviewScreen #grid-pic, PreviewScreen #audit-pic { width: 1fr; height: auto; }
    PreviewScreen .note { height: auto; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.mode = 0
        self.page = 0
        self.frame = -1  # index into the grids; -1 = the latest
        self.sources: list[Previewable] = []
        self._signature: int | None = None
        self.frames: GridFrames | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bar"):
            yield Select([], prompt="no pool or sample grids in this workspace yet", id="source", compact=True,
                         type_to_search=False)
            yield Static("", id="mode")
        yield Static("", id="caption", markup=False)
        with VerticalScroll(id="pictures"):
            for name in ("benign", "melanoma"):
                yield Static(name, classes="class-title pool-view", id=f"title-{name}")
                yield picture(classes="pic pool-view", id=f"pool-{name}")
                with Horizontal(classes="pair real-view", id=f"pair-{name}"):
                    with Vertical():
                        yield Static(f"{name}: real", classes="class-title")
                        yield picture(classes="pic", id=f"real-{name}")
                    with Vertical():
                        yield Static(f"{name}: synthetic", classes="class-title")
                        yield picture(classes="pic", id=f"synth-{name}")
            yield picture(id="grid-pic", classes="grid-view")
            for name in ("benign", "melanoma"):
                with Horizontal(classes="pair picks-view"):
                    for end in ("first", "last"):
                        with Vertical():
                            yield Static(f"{name}: {end} picks", classes="class-title", id=f"{end}-title-{name}")
                            yield picture(classes="pic", id=f"{end}-{name}")
                            yield Static("", classes="note", id=f"{end}-note-{name}", markup=False)
            yield Static("", classes="class-title picks-view", id="rejects-title")
            yield picture(classes="pic picks-view", id="rejects")
            yield Static("", classes="note picks-view", id="rejects-note", markup=False)
            yield picture(id="audit-pic", classes="audit-view")
            yield Static("", classes="note audit-view", id="audit-note", markup=False)

    def on_mount(self) -> None:
        self._show_mode()
        super().on_mount()

    def on_screen_resume(self) -> None:
        if self.gapp.snapshot is not None:
            self._signature = None
            self.snapshot_changed(self.gapp.snapshot)

    # ------------------------------------------------------------------ what there is to preview
    def snapshot_changed(self, snap: Snapshot) -> None:
        signature = hash(tuple((r.id, r.status) for r in snap.runs))
        if self.is_current and signature != self._signature:
            self._signature = signature
            self._list_sources(snap)

    @work(thread=True, exclusive=True, group="preview-sources")
    def _list_sources(self, snap: Snapshot) -> None:
        self.post_message(Loaded("preview-sources", reads.list_previewables(self.gapp.workspace, snap.runs)))

    def _source(self) -> Previewable | None:
        value = self.query_one("#source", Select).value
        return next((s for s in self.sources if s.run_id == value), None)

    # ------------------------------------------------------------------ loading a page
    def _load(self) -> None:
        src = self._source()
        if src is None:
            for pic in self.query(".pic, #grid-pic, #audit-pic"):
                pic.image = None  # type: ignore[attr-defined]
            self.query_one("#caption", Static).update(
                "Pools (gan-pool runs), GAN sample grids (gan-train runs), selections (select runs) and audits "
                "(ganaug audit) appear here once runs have made them." if not self.sources else "")
            return
        mode = MODES[self.mode]
        if mode == "sample grids":
            self._load_frames(src.run_id)
        elif mode == "picks":
            self._load_picks(src.run_id)
        elif mode == "audit":
            self._load_audit(src.run_id)
        else:
            self._load_pool(src.run_id, self.page, mode == "real vs synthetic")

    @work(thread=True, exclusive=True, group="preview")
    def _load_pool(self, run_id: str, page: int, with_real: bool) -> None:
        per_page = SIDE_BY_SIDE if with_real else PER_PAGE
        try:
            pool = reads.load_pool_page(self.gapp.workspace, run_id, page, per_page)
            real = (reads.load_real_page(self.gapp.workspace, run_id, page, per_page, pool.res)
                    if with_real else None)
        except InputError as exc:
            self.post_message(Loaded("preview-page", error=str(exc)))
            return
        self.post_message(Loaded("preview-page", (pool, real)))

    @work(thread=True, exclusive=True, group="preview")
    def _load_picks(self, run_id: str) -> None:
        try:
            self.post_message(Loaded("preview-picks", reads.load_picks(self.gapp.workspace, run_id, PICKS)))
        except InputError as exc:
            self.post_message(Loaded("preview-picks", error=str(exc)))

    @work(thread=True, exclusive=True, group="preview")
    def _load_audit(self, run_id: str) -> None:
        try:
            self.post_message(Loaded("preview-audit", reads.load_audit(self.gapp.workspace, run_id, PAIRS)))
        except (InputError, OSError) as exc:
            self.post_message(Loaded("preview-audit", error=str(exc)))

    @work(thread=True, exclusive=True, group="preview")
    def _load_frames(self, run_id: str) -> None:
        self.post_message(Loaded("preview-frames", reads.load_grid_frames(self.gapp.workspace, run_id)))

    def on_loaded(self, message: Loaded) -> None:
        caption = self.query_one("#caption", Static)
        mode = MODES[self.mode]
        wanted = {"preview-page": mode in ("pool", "real vs synthetic"), "preview-frames": mode == "sample grids",
                  "preview-picks": mode == "picks", "preview-audit": mode == "audit"}
        if not wanted.get(message.topic, True):
            return  # a page of the view the user has left (its worker was still reading)
        if message.error is not None:
            caption.update(message.error)
        elif message.topic == "preview-sources":
            self._set_sources(message.data)
        elif message.topic == "preview-page":
            pool, real = message.data
            if (src := self._source()) is not None and pool.run_id == src.run_id:
                self._show_pool(pool, real)
        elif message.topic == "preview-frames":
            self.frames = message.data
            self._show_frame()
        elif message.topic == "preview-picks":
            self._show_picks(message.data)
        elif message.topic == "preview-audit":
            self._show_audit(message.data)

    def _set_sources(self, sources: list[Previewable]) -> None:
        select = self.query_one("#source", Select)
        keep = select.value
        self.sources = sources
        options = []
        for s in sources:
            what = ", ".join(x for x in ("pool" if s.pool else "", f"{s.grids} grids" if s.grids else "",
                                         "selection" if s.selection else "", "audit" if s.audit else "") if x)
            options.append((f"{s.label or s.kind} — {what} — {s.run_id}", s.run_id))
        select.set_options(options)
        if any(s.run_id == keep for s in sources):
            select.value = keep
        elif sources:
            select.value = sources[0].run_id
        self._load()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.page, self.frame = 0, -1
        src = self._source()
        if src is not None and not available(src, MODES[self.mode]):
            self.mode = next(i for i, m in enumerate(MODES) if available(src, m))
            self._show_mode()
        self._load()

    # ------------------------------------------------------------------ drawing
    def _show_mode(self) -> None:
        mode = MODES[self.mode]
        self.query_one("#mode", Static).update(f"view: {mode} (m)")
        for cls, shown in (("pool-view", mode == "pool"), ("real-view", mode == "real vs synthetic"),
                           ("grid-view", mode == "sample grids"), ("picks-view", mode == "picks"),
                           ("audit-view", mode == "audit")):
            for w in self.query(f".{cls}"):
                w.display = shown

    def _show_pool(self, pool: PoolPage, real: RealPage | None) -> None:
        self.page = pool.page
        counts = ", ".join(f"{n:,} {name}" for name, n in pool.per_class.items())
        first = {name: (ids[0], ids[-1]) for name, ids in pool.ids.items() if ids}
        span = "; ".join(f"{a}–{b}" for a, b in first.values())
        lines = [f"pool of {pool.run_id}: {counts}; page {pool.page + 1}/{pool.pages} ({span}); "
                 f"{pool.res} px; from GAN run {pool.gan_run or '?'}"]
        if real is not None:
            lines.append(f"real: {real.error}" if real.error else f"real: {real.source}")
        self.query_one("#caption", Static).update("\n".join(lines))
        for name, image in pool.mosaics.items():
            self._set_image(f"#pool-{name}", image)
            self._set_image(f"#synth-{name}", image)
            self._set_image(f"#real-{name}", real.mosaics.get(name) if real else None)
            self.query_one(f"#title-{name}", Static).update(f"{name} ({pool.per_class[name]:,} in the pool)")

    def _set_image(self, selector: str, image: Any) -> None:
        widget = self.query_one(selector)
        widget.image = image  # type: ignore[attr-defined]
        # The picture's height follows its width and image: its auto-height parents must be measured again too.
        for node in widget.ancestors_with_self:
            if node is self:
                break
            node.refresh(layout=True)

    def _show_frame(self) -> None:
        frames = self.frames
        caption = self.query_one("#caption", Static)
        if frames is None or not frames.grids:
            caption.update("this run has no sample grids (samples/kimg-NNNNNN.png) yet")
            self._set_image("#grid-pic", None)
            return
        idx = self.frame % len(frames.grids)
        kimg, path = frames.grids[idx]
        metrics = frames.metrics.get(kimg, {})
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        caption.update(f"{frames.run_id}: checkpoint {idx + 1}/{len(frames.grids)}, kimg {kimg}"
                       f"{'  ' + shown if shown else ''}  (one row per class: benign, melanoma)")
        self._set_image("#grid-pic", str(path))

    def _show_picks(self, picks: PicksView) -> None:
        counts = ", ".join(f"{n:,} {name}" for name, n in picks.counts.items())
        score = {"best": "the helper's error, lowest first", "worst": "the helper's error, highest first",
                 "diverse": "distance to the nearest other selected image"}.get(picks.sampler, "")
        self.query_one("#caption", Static).update(
            f"selection {picks.run_id}: {picks.label}, {picks.sampler} sampler, {counts}; ranks in its order"
            + (f" (score: {score})" if score else ""))
        for name in ("benign", "melanoma"):
            for end, side in (("first", picks.first), ("last", picks.last)):
                image, notes = side.get(name, (None, []))
                self._set_image(f"#{end}-{name}", image)
                self.query_one(f"#{end}-note-{name}", Static).update("  ".join(notes) or "—")
        title = self.query_one("#rejects-title", Static)
        if picks.rejects is None:
            title.update("no near-duplicates rejected" if picks.sampler == "diverse" else "")
            self._set_image("#rejects", None)
            self.query_one("#rejects-note", Static).update("")
        else:
            title.update(f"rejected near-duplicates ({picks.n_rejected:,}; closest first), each beside the kept "
                         "image it duplicates, Hamming distance of their pHashes")
            self._set_image("#rejects", picks.rejects[0])
            self.query_one("#rejects-note", Static).update("   ".join(picks.rejects[1]))

    def _show_audit(self, audit: AuditView) -> None:
        self.query_one("#caption", Static).update(audit.summary)
        self._set_image("#audit-pic", audit.pairs)
        self.query_one("#audit-note", Static).update("\n".join(audit.lines))

    # ------------------------------------------------------------------ keys
    def action_mode(self) -> None:
        src = self._source()
        for step in range(1, len(MODES) + 1):
            candidate = (self.mode + step) % len(MODES)
            if src is None or available(src, MODES[candidate]):
                break
        self.mode = candidate
        self._show_mode()
        self._load()

    def action_step(self, delta: int) -> None:
        if MODES[self.mode] == "sample grids":
            if self.frames and self.frames.grids:
                n = len(self.frames.grids)
                self.frame = max(0, min(n - 1, self.frame % n + delta))
                self._show_frame()
        else:
            self.page = max(0, self.page + delta)
            self._load()

    def action_choose_source(self) -> None:
        source = self.query_one("#source", Select)
        source.focus()
        source.action_show_overlay()  # the list opens at once: ↑/↓ and enter pick, esc keeps the current one
