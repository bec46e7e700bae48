"""Builder: compose one configuration of the paper's grammar — data set, ratio, GAN, sampler, replicates — see
what it means in images per class while typing, and queue it.

The ratio is checked by the engine's own grammar (``engine.config``) at every keystroke and the per-class
counts are ``Ratio.counts`` on the chosen data set's training part, so what the screen says is what a
run will train on. A configuration without synthetic images queues its classify runs here; one with synthetic
images needs its GAN, pool and selection planned first, which is the experiment grid's job.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, Static

from engine.config import DEFAULT_GAN, DEFAULT_SAMPLER, GAN_TAGS, SAMPLER_TAGS, Configuration, Ratio
from engine.data.formats import FORMATS
from engine.errors import InputError
from ganaug_tui import actions, reads
from ganaug_tui.messages import Loaded
from ganaug_tui.reads import ClassSizes, DataChoice
from ganaug_tui.screens.base import GanaugScreen

# The ratios of the paper's Table 2, in its order (augmentation, then anonymization).
PAPER_RATIOS = ("1:0", "1:1/4", "1:1/2", "1:1", "(1:1/2:1/2)", "(1:1/2:3/4)", "(1:1/2:1)",
                "1/16:0", "1/16:1/16", "1/16:15/16", "1/8:0", "1/8:1/8", "1/8:7/8",
                "1/4:0", "1/4:1/4", "1/4:3/4", "1/2:0", "1/2:1/2")
GAN_NAMES = {name: tag for tag, name in GAN_TAGS.items()}
SAMPLER_NAMES = {DEFAULT_SAMPLER: "", **{name: tag for tag, name in SAMPLER_TAGS.items()}}
PROTOCOLS = {"demo": "demo: test_resnet at 48 px (CPU minutes)",
             "paper": "paper: Inception-v4 at 299 px (needs an ImageNet weights file)"}


class RatioGrammar(Validator):
    """The engine's ratio grammar, message and all."""

    def validate(self, value: str) -> ValidationResult:
        try:
            Ratio.parse(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


def compose_label(ratio: str, gan: str, sampler: str) -> str:
    """The paper-style label of the picks (tags only where the ratio has synthetic images)."""
    parts = [ratio.strip()]
    try:
        if Ratio.parse(ratio).has_synthetic:
            parts += [t for t in (GAN_NAMES[gan] if gan != DEFAULT_GAN else "", SAMPLER_NAMES[sampler]) if t]
    except ValueError:
        pass
    return " ".join(parts)


def counts_text(conf: Configuration, sizes: ClassSizes) -> str:
    c = conf.ratio.counts(sizes.benign, sizes.melanoma)
    return (f"real       {c.real_benign:>7,} benign  {c.real_melanoma:>6,} melanoma  = {c.real:,}\n"
            f"synthetic  {c.synth_benign:>7,} benign  {c.synth_melanoma:>6,} melanoma  = {c.synthetic:,}"
            + (f" from {conf.gan}, {conf.sampler} sampler" if c.synthetic else "") + "\n"
            f"of a training part of {sizes.benign:,} benign + {sizes.melanoma:,} melanoma ({sizes.source})")


class BuilderScreen(GanaugScreen):
    MODE = "builder"
    AUTO_FOCUS = ""  # nothing takes the keys on arrival, so 1-5 still switch screens; tab enters the form
    BINDINGS = [
        Binding("ctrl+s", "enqueue", "Enqueue", id="builder.enqueue", priority=True,
                tooltip="Queue the runs of this configuration"),
        Binding("escape", "leave_field", "Leave field", id="builder.leave_field",
                tooltip="Leave the text field, so that 1-5 switch screens again"),
    ]
    DEFAULT_CSS = """
    BuilderScreen #form { padding: 0 1; }
    BuilderScreen .row { height: 1; }
    BuilderScreen .row Label { width: 12; color: $text-muted; }
    BuilderScreen .row Select { width: 1fr; max-width: 46; margin-right: 1; }
    BuilderScreen .row Input { width: 1fr; max-width: 46; margin-right: 1; }
    BuilderScreen #replicates, BuilderScreen #split-seed { max-width: 8; }
    BuilderScreen #ratio-check { height: auto; padding-left: 12; }
    BuilderScreen #ratio-check.-bad { color: $error; }
    BuilderScreen #counts { height: auto; margin: 1 0; }
    BuilderScreen #plan { height: auto; color: $text-muted; margin: 1 0; }
    BuilderScreen #plan.-blocked { color: $warning; }
    BuilderScreen .custom { display: none; }
    BuilderScreen.-custom-data .custom { display: block; }
    BuilderScreen .paper { display: none; }
    BuilderScreen.-paper .paper { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.sizes: ClassSizes | None = None
        self.sizes_error: str | None = None
        self.choices: dict[str, DataChoice] = {}

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="form", can_focus=False):
            with Horizontal(classes="row"):
                yield Label("data")
                yield Select([], prompt="custom data set", id="data", compact=True, type_to_search=False)
            with Horizontal(classes="row custom"):
                yield Label("format")
                yield Select([(f, f) for f in sorted(FORMATS)], value="isic2019", allow_blank=False, id="format",
                             compact=True, type_to_search=False)
                yield Input(placeholder="data set root folder", id="root", compact=True)
            with Horizontal(classes="row"):
                yield Label("ratio")
                yield Input("1:1/2", placeholder="R:S or (R:SB:SM), e.g. 1:1/2", id="ratio", compact=True,
                            validators=[RatioGrammar()], validate_on=["changed"])
                yield Select([(r, r) for r in PAPER_RATIOS], prompt="paper's ratios", id="preset", compact=True,
                             type_to_search=False)
            yield Static("", id="ratio-check", markup=False)
            with Horizontal(classes="row"):
                yield Label("GAN")
                yield Select([(f"{name} ({tag})", name) for tag, name in GAN_TAGS.items()], value=DEFAULT_GAN,
                             allow_blank=False, id="gan", compact=True, type_to_search=False)
                yield Label("sampler")
                yield Select([(f"{n} ({t})" if t else n, n) for n, t in SAMPLER_NAMES.items()],
                             value=DEFAULT_SAMPLER, allow_blank=False, id="sampler", compact=True,
                             type_to_search=False)
            with Horizontal(classes="row"):
                yield Label("replicates")
                yield Input("3", id="replicates", type="integer", compact=True)
                yield Label("split seed")
                yield Input("0", id="split-seed", type="integer", compact=True)
            yield Static("", id="counts", markup=False)
            with Horizontal(classes="row"):
                yield Label("protocol")
                yield Select([(t, k) for k, t in PROTOCOLS.items()], value="demo", allow_blank=False, id="protocol",
                             compact=True, type_to_search=False)
            with Horizontal(classes="row paper"):
                yield Label("weights")
                yield Input(placeholder="ImageNet weights file for inception_v4", id="weights", compact=True)
            with Horizontal(classes="row"):
                yield Label("experiment")
                yield Input("builder", id="experiment", compact=True)
            yield Static("", id="plan", markup=False)
            yield Button("Enqueue (ctrl+s)", id="enqueue", variant="primary")

    def on_mount(self) -> None:
        self._find_data()
        self._changed()
        super().on_mount()

    # ------------------------------------------------------------------ data set and its class sizes
    @work(thread=True, exclusive=True, group="builder-data")
    def _find_data(self) -> None:
        demo = reads.demo_choice(self.gapp.workspace)
        self.post_message(Loaded("builder-data", [demo] if demo else []))

    @work(thread=True, exclusive=True, group="builder-sizes")
    def _load_sizes(self, fmt: str, root: str, seed: int) -> None:
        try:
            sizes = reads.train_class_sizes(self.gapp.workspace, fmt, root, seed)
        except (InputError, ValueError) as exc:
            self.post_message(Loaded("builder-sizes", ((fmt, root, seed), None), error=str(exc)))
            return
        self.post_message(Loaded("builder-sizes", ((fmt, root, seed), sizes)))

    def on_loaded(self, message: Loaded) -> None:
        if message.topic == "builder-data":
            self.choices = {c.key: c for c in message.data}
            select = self.query_one("#data", Select)
            select.set_options([(c.title, c.key) for c in message.data])
            if message.data:
                select.value = message.data[0].key
            self._data_changed()
        elif message.topic == "builder-sizes":
            asked, sizes = message.data
            data = self._data_config()
            if data is None or asked != (data["data"]["format"], data["data"]["root"], data["data"]["split_seed"]):
                return  # an answer for what the fields said before the last keystroke
            self.sizes, self.sizes_error = sizes, message.error
            self._changed()

    def _data_config(self) -> dict[str, Any] | None:
        """The classify config keys of the chosen data set (data, tests), or None when it is incomplete."""
        key = self.query_one("#data", Select).value
        if isinstance(key, str) and key in self.choices:
            cfg = self.choices[key].config
            return {"data": {**cfg["data"], "split_seed": self._int("#split-seed", 0)}, "tests": cfg["tests"]}
        root = self.query_one("#root", Input).value.strip()
        fmt = self.query_one("#format", Select).value
        if not root or not isinstance(fmt, str):
            return None
        return {"data": {"format": fmt, "root": root, "split_seed": self._int("#split-seed", 0)}}

    def _data_changed(self) -> None:
        custom = not isinstance(self.query_one("#data", Select).value, str)
        self.set_class(custom, "-custom-data")
        for widget in self.query(".custom Select, .custom Input"):
            widget.disabled = not custom  # hidden fields stay out of the tab order
        self.sizes, self.sizes_error = None, None
        data = self._data_config()
        if data is not None:
            d = data["data"]
            self._load_sizes(d["format"], d["root"], d["split_seed"])
        self._changed()

    # ------------------------------------------------------------------ the picks, checked as they change
    def _int(self, selector: str, default: int) -> int:
        try:
            return int(self.query_one(selector, Input).value)
        except ValueError:
            return default

    def label(self) -> str:
        return compose_label(self.query_one("#ratio", Input).value, str(self.query_one("#gan", Select).value),
                             str(self.query_one("#sampler", Select).value))

    def configuration(self) -> tuple[Configuration | None, str | None]:
        try:
            return Configuration.parse(self.label()), None
        except ValueError as exc:
            return None, str(exc)

    def blocker(self) -> str | None:
        """Why the picks cannot be queued now (None: they can)."""
        conf, error = self.configuration()
        if conf is None:
            return error
        if self._int("#replicates", 0) < 1:
            return "replicates must be a positive integer"
        if self._data_config() is None:
            return "name the data set: its format and root folder"
        if self.sizes_error:
            return self.sizes_error
        if conf.ratio.has_synthetic:
            return (f"{conf.label} needs synthetic images: its GAN, pool and selection are planned by the "
                    "experiment grid (an experiment of experiments.toml), not queued one run at a time")
        return None

    def _changed(self) -> None:
        conf, error = self.configuration()
        check = self.query_one("#ratio-check", Static)
        check.set_class(conf is None, "-bad")
        check.update(f"✗ {error}" if conf is None else f"✓ {conf.label}")
        counts = self.query_one("#counts", Static)
        if conf is not None and self.sizes is not None:
            counts.update(counts_text(conf, self.sizes))
        elif self.sizes_error:
            counts.update(f"class sizes unknown: {self.sizes_error}")
        else:
            counts.update("reading the data set's class sizes…" if self._data_config() else "")
        blocker = self.blocker()
        plan = self.query_one("#plan", Static)
        plan.set_class(blocker is not None, "-blocked")
        if blocker is None and conf is not None:
            plan.update(f"enqueue: {self._int('#replicates', 0)} classify run(s) of {conf.label}, replicates "
                        f"0-{self._int('#replicates', 0) - 1}, experiment "
                        f"{self.query_one('#experiment', Input).value.strip() or 'builder'!r}")
        else:
            plan.update(f"cannot enqueue: {blocker}")
        self.query_one("#enqueue", Button).disabled = blocker is not None
        self.set_class(self.query_one("#protocol", Select).value == "paper", "-paper")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("root", "split-seed"):
            self._data_changed()
        else:
            self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset" and isinstance(event.value, str):
            self.query_one("#ratio", Input).value = event.value
        elif event.select.id in ("data", "format"):
            self._data_changed()
        else:
            self._changed()

    # ------------------------------------------------------------------ enqueue
    def _protocol(self) -> dict[str, Any]:
        from engine.demo import demo_protocol

        if self.query_one("#protocol", Select).value == "demo":
            return demo_protocol()
        weights = self.query_one("#weights", Input).value.strip()
        return {"model": {"weights": weights}} if weights else {}

    def action_enqueue(self) -> None:
        blocker = self.blocker()
        conf, _ = self.configuration()
        data = self._data_config()
        if blocker is not None or conf is None or data is None:
            self.notify(f"cannot enqueue: {blocker}", severity="error")
            return
        experiment = self.query_one("#experiment", Input).value.strip() or "builder"
        self.notify(f"checking and queueing {conf.label}…")
        self.gapp.act(actions.enqueue_real_only, experiment, conf.label, {**data, **self._protocol()},
                      self._int("#replicates", 1), read_only=self.gapp.read_only)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "enqueue":
            self.action_enqueue()

    def action_leave_field(self) -> None:
        self.set_focus(None)
