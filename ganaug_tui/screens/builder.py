"""Builder: compose an experiment on the experiment grid — a configuration of the paper's grammar (data set,
test sets, GAN, ratio, sampler, replicates) on the protocol of an experiment of ``experiments.toml``, or that
experiment whole, or some of its labels — see what the grid will enqueue, and queue it.

The Builder computes nothing the engine does not: its experiment is the chosen ``[[experiment]]`` of the file
with ``--set``-style overrides (``engine.config.derive_experiment``, validated by the file's own loader), the
ratio is checked by the grammar at every keystroke, the per-class counts are ``Ratio.counts`` on the data's
class sizes, the preview is ``engine.grid.preview`` (in a thread) and enqueueing is ``engine.grid.enqueue``,
which stores the experiment's spec as ``ganaug run`` does. A configuration built under a name the store already
knows joins that experiment's configurations (with its baseline), so results compare them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, SelectionList, Static
from textual.worker import get_current_worker

from engine.config import (
    DEFAULT_GAN,
    DEFAULT_SAMPLER,
    GAN_TAGS,
    SAMPLER_TAGS,
    Configuration,
    Experiment,
    GanSpec,
    Ratio,
    TrainData,
)
from engine.data.formats import FORMATS
from engine.errors import InputError
from ganaug_tui import actions, reads
from ganaug_tui.messages import ActionDone, Loaded
from ganaug_tui.reads import GanChoice
from ganaug_tui.screens.base import GanaugScreen
from ganaug_tui.screens.modals import Confirm

# The ratios of the paper's Table 2, in its order (augmentation, then anonymization).
PAPER_RATIOS = ("1:0", "1:1/4", "1:1/2", "1:1", "(1:1/2:1/2)", "(1:1/2:3/4)", "(1:1/2:1)",
                "1/16:0", "1/16:1/16", "1/16:15/16", "1/8:0", "1/8:1/8", "1/8:7/8",
                "1/4:0", "1/4:1/4", "1/4:3/4", "1/2:0", "1/2:1/2")
TAG_OF = {name: tag for tag, name in GAN_TAGS.items()}
SAMPLER_NAMES = {DEFAULT_SAMPLER: "", **{name: tag for tag, name in SAMPLER_TAGS.items()}}
PRESETS = ("tiny", "demo", "paper")
NEW_GAN = "new"  # the GAN choice "train a new one"
WHOLE, ONE = "whole", "one"
BASELINE = "1:0"
GROUP = "builder"  # the group the Builder's configurations join

# The preview plans every run at each keystroke: a typo of 10,000,000 must not start an endless plan
MAX_REPLICATES = 1_000


class RatioGrammar(Validator):
    """The engine's ratio grammar, message and all."""

    def validate(self, value: str) -> ValidationResult:
        try:
            Ratio.parse(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


def compose_label(ratio: str, family: str, sampler: str) -> str:
    """The paper-style label of the picks (tags only where the ratio has synthetic images)."""
    parts = [ratio.strip()]
    try:
        synthetic = Ratio.parse(ratio).has_synthetic
    except ValueError:
        synthetic = False
    if synthetic:
        parts += [t for t in (TAG_OF[family] if family != DEFAULT_GAN else "", SAMPLER_NAMES[sampler]) if t]
    return " ".join(parts)


@dataclass(frozen=True)
class Build:
    """What the Builder asks the engine for: experiment ``template`` of the file with ``overrides`` (relative to its
    table, as ``--set`` takes them) named ``name``; ``only``/``replicates`` as ``ganaug run --only/--replicates``."""

    template: str
    name: str
    overrides: tuple[str, ...]
    only: tuple[str, ...] | None = None
    replicates: int | None = None
    gan_run: str | None = None  # the existing GAN run the configuration names

    def experiment(self, workspace: Path, file: Path | None) -> Experiment:
        from engine.config import derive_experiment

        return derive_experiment(self.template, self.name, self.overrides, file=file, workspace=workspace)


def counts_text(conf: Configuration, sizes: Any) -> str:
    c = conf.ratio.counts(sizes.benign, sizes.melanoma)
    return (f"real       {c.real_benign:>7,} benign  {c.real_melanoma:>6,} melanoma  = {c.real:,}\n"
            f"synthetic  {c.synth_benign:>7,} benign  {c.synth_melanoma:>6,} melanoma  = {c.synthetic:,}"
            + (f" from {conf.gan}, {conf.sampler} sampler" if c.synthetic else "") + "\n"
            f"of a training split of {sizes.benign:,} benign + {sizes.melanoma:,} melanoma")


def plan_text(planned: Any, build: Build) -> str:
    """``engine.grid``'s plan as the user reads it: runs per kind, new and reused, and the GAN run it names."""
    lines = [f"{planned.experiment.name}: {len(planned.runs)} runs, {len(planned.new)} new"
             + (f" ({', '.join(planned.labels)})" if planned.labels else "")]
    for kind, row in planned.summary().items():
        lines.append(f"  {kind:<10} {row['runs']:>4} runs: {row['new']:>4} new, {row['reused']:>4} reused")
    if build.gan_run is not None and planned.runs and not any(r.run_id == build.gan_run for r in planned.runs):
        lines.append(f"GAN run {build.gan_run} is not reused: the plan trains a new GAN (its config differs from "
                     "this experiment's: data, FID features, or settings the file cannot name)")
    return "\n".join(lines)


class BuilderScreen(GanaugScreen):
    MODE = "builder"
    AUTO_FOCUS = ""  # nothing takes the keys on arrival, so 1-5 still switch screens; tab enters the form
    BINDINGS = [
        Binding("ctrl+s", "enqueue", "Enqueue", id="builder.enqueue", priority=True,
                tooltip="Queue the runs of the preview (engine.grid.enqueue)"),
        Binding("ctrl+o", "save", "Save to toml", id="builder.save", priority=True,
                tooltip="Write this experiment into experiments.toml (asks before replacing one)"),
        Binding("escape", "leave_field", "Leave field", id="builder.leave_field",
                tooltip="Leave the text field, so that 1-5 switch screens again"),
    ]
    DEFAULT_CSS = """
    BuilderScreen #form { padding: 0 1; }
    BuilderScreen .row { height: 1; }
    BuilderScreen .row Label { width: 12; color: $text-muted; }
    BuilderScreen .row Select { width: 1fr; max-width: 60; margin-right: 1; }
    BuilderScreen .row Input { width: 1fr; max-width: 46; margin-right: 1; }
    BuilderScreen #replicates, BuilderScreen #split-seed, BuilderScreen #pool { max-width: 9; }
    BuilderScreen #family, BuilderScreen #preset-gan { max-width: 22; }
    BuilderScreen SelectionList { height: auto; max-height: 8; margin-left: 12; border: none; padding: 0; }
    BuilderScreen #ratio-check { height: auto; padding-left: 12; }
    BuilderScreen #ratio-check.-bad { color: $error; }
    BuilderScreen #counts { height: auto; margin: 1 0 0 0; }
    BuilderScreen #plan { height: auto; color: $text-muted; margin: 1 0; }
    BuilderScreen #plan.-blocked { color: $warning; }
    BuilderScreen #buttons { height: auto; }
    BuilderScreen #buttons Button { margin-right: 2; }
    BuilderScreen .custom, BuilderScreen .new-gan { display: none; }
    BuilderScreen.-custom-data .custom { display: block; }
    BuilderScreen.-new-gan .new-gan { display: block; }
    BuilderScreen.-whole .one { display: none; }
    BuilderScreen .whole { display: none; }
    BuilderScreen.-whole .whole { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.experiments: dict[str, Experiment] = {}
        self.gans: dict[str, GanChoice] = {}
        self.sizes: dict[tuple[str, str, int], Any] = {}  # train data -> engine.grid.Sizes
        self.load_error: str | None = None
        self.plan: Any = None
        self.plan_error: str | None = None
        self.plan_for: Build | None = None
        self._asked: Build | None = None
        self.specs: dict[str, dict[str, Any]] = {}  # the store's experiment specs, by name
        self._store_signature: int | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="form", can_focus=False):
            with Horizontal(classes="row"):
                yield Label("from")
                yield Select([], prompt="reading experiments.toml…", id="template", compact=True,
                             type_to_search=False)
                yield Select([("a configuration", ONE), ("the whole experiment", WHOLE)], value=ONE,
                             allow_blank=False, id="what", compact=True, type_to_search=False)
            yield SelectionList(id="labels", classes="whole")
            with Horizontal(classes="row one"):
                yield Label("data")
                yield Select([], prompt="custom data set", id="data", compact=True, type_to_search=False)
            with Horizontal(classes="row custom one"):
                yield Label("format")
                yield Select([(f, f) for f in sorted(FORMATS)], value="isic2019", allow_blank=False, id="format",
                             compact=True, type_to_search=False)
                yield Input(placeholder="data set root folder", id="root", compact=True)
            with Horizontal(classes="row one"):
                yield Label("test sets")
            yield SelectionList(id="tests", classes="one")
            with Horizontal(classes="row one"):
                yield Label("ratio")
                yield Input("1:1/2", placeholder="R:S or (R:SB:SM), e.g. 1:1/2", id="ratio", compact=True,
                            validators=[RatioGrammar()], validate_on=["changed"])
                yield Select([(r, r) for r in PAPER_RATIOS], prompt="paper's ratios", id="preset", compact=True,
                             type_to_search=False)
            yield Static("", id="ratio-check", classes="one", markup=False)
            with Horizontal(classes="row one"):
                yield Label("GAN")
                yield Select([("train a new one", NEW_GAN)], value=NEW_GAN, allow_blank=False, id="gan",
                             compact=True, type_to_search=False)
            with Horizontal(classes="row new-gan one"):
                yield Label("family")
                yield Select([(name, name) for name in GAN_TAGS.values()], value="stylegan2", allow_blank=False,
                             id="family", compact=True, type_to_search=False)
                yield Select([(p, p) for p in PRESETS], value="demo", allow_blank=False, id="preset-gan",
                             compact=True, type_to_search=False)
                yield Label("pool/class")
                yield Input("", placeholder="file's", id="pool", type="integer", compact=True)
            with Horizontal(classes="row one"):
                yield Label("sampler")
                yield Select([(f"{n} ({t})" if t else n, n) for n, t in SAMPLER_NAMES.items()],
                             value=DEFAULT_SAMPLER, allow_blank=False, id="sampler", compact=True,
                             type_to_search=False)
            with Horizontal(classes="row"):
                yield Label("replicates")
                yield Input("3", id="replicates", type="integer", compact=True)
                yield Label("split seed", classes="one")
                yield Input("0", id="split-seed", type="integer", compact=True, classes="one")
            yield Static("", id="counts", classes="one", markup=False)
            with Horizontal(classes="row one"):
                yield Label("experiment")
                yield Input("builder", id="experiment", compact=True)
            yield Static("", id="plan", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Enqueue (ctrl+s)", id="enqueue", variant="primary", compact=True)
                yield Button("Save to experiments.toml (ctrl+o)", id="save", compact=True)

    def on_mount(self) -> None:
        self._load_choices()
        self._changed()
        super().on_mount()

    # ------------------------------------------------------------------ what there is to choose from
    @work(thread=True, exclusive=True, group="builder-choices")
    def _load_choices(self) -> None:
        from engine.config import read_experiments

        try:
            exps = read_experiments(self.gapp.experiments_file, workspace=self.gapp.workspace)
        except InputError as exc:
            self.post_message(Loaded("builder-choices", [], error=str(exc)))
            return
        self.post_message(Loaded("builder-choices", exps))

    @work(thread=True, exclusive=True, group="builder-store")
    def _load_store(self) -> None:
        ws = self.gapp.workspace
        if reads.has_store(ws):
            self.post_message(Loaded("builder-store", (reads.gan_choices(ws), reads.stored_specs(ws))))

    def snapshot_changed(self, snap: Any) -> None:
        """New runs may be new GANs or pools, and a stored experiment's configurations are those a build joins."""
        signature = hash(tuple((r.id, r.status) for r in snap.runs))
        if signature != self._store_signature:
            self._store_signature = signature
            self._load_store()

    def on_loaded(self, message: Loaded) -> None:
        if message.topic == "builder-choices":
            self._set_choices(message.data, message.error)
        elif message.topic == "builder-store":
            self._set_gans(*message.data)
        elif message.topic == "builder-plan":
            build, planned, sizes = message.data
            if sizes is not None:
                self.sizes[sizes[0]] = sizes[1]
            if build != self._asked:
                return  # the answer for fields that changed since
            self.plan, self.plan_error, self.plan_for = planned, message.error, build
            self._show()

    def _set_choices(self, exps: list[Experiment], error: str | None) -> None:
        self.load_error = error
        self.experiments = {e.name: e for e in exps}
        template = self.query_one("#template", Select)
        keep = template.value
        template.set_options([(f"{e.name} ({len(e.labels)} configurations, {Path(e.source).name})", e.name)
                              for e in exps])
        if keep in self.experiments:
            template.value = keep  # a reload (after a save) keeps the form as it is
        elif exps:
            template.value = "demo" if "demo" in self.experiments else exps[0].name
            self._template_changed()
        self._changed()

    def _set_gans(self, gans: list[GanChoice], specs: dict[str, dict[str, Any]]) -> None:
        self.specs = specs
        gan = self.query_one("#gan", Select)
        keep = gan.value
        first = not self.gans
        self.gans = {g.run_id: g for g in gans}
        gan.set_options([*((g.title, g.run_id) for g in gans), ("train a new one", NEW_GAN)])
        trained = [g.run_id for g in gans if g.status == "succeeded"]
        if first and gans:
            gan.value = trained[0] if trained else gans[0].run_id
        else:
            gan.value = keep if keep in self.gans else NEW_GAN
        self._asked = None  # the store changed: which runs are new or reused may have too (e.g. after enqueueing)
        self._changed()

    def _template(self) -> Experiment | None:
        value = self.query_one("#template", Select).value
        return self.experiments.get(value) if isinstance(value, str) else None

    def _template_changed(self) -> None:
        exp = self._template()
        if exp is None:
            self._changed()
            return
        labels = self.query_one("#labels", SelectionList)
        labels.clear_options()
        labels.add_options([(label, label, True) for label in exp.labels])
        # Data sets: the template's, then every other [data.train] of the file, then a custom one.
        seen, options = set(), []
        for e in [exp, *self.experiments.values()]:
            if e.train is not None and not e.unresolved and (e.train.format, e.train.root) not in seen:
                seen.add((e.train.format, e.train.root))
                options.append((f"{e.train.format} {reads.display_path(Path(e.train.root))}"
                                + (" (this experiment's)" if e is exp else f" (of {e.name})"), json.dumps(
                                    [e.train.format, e.train.root])))
        data = self.query_one("#data", Select)
        data.set_options(options)
        if options:
            data.value = options[0][1]
        tests = self.query_one("#tests", SelectionList)
        tests.clear_options()
        tests.add_options([(t, t, True) for t in exp.test_sets])
        gan = exp.gans.get("sgn") or next(iter(exp.gans.values()), None)
        if gan is not None:
            self.query_one("#family", Select).value = gan.family
            self.query_one("#preset-gan", Select).value = gan.preset
        self.query_one("#pool", Input).value = str(gan.pool_per_class) if gan and gan.pool_per_class else ""
        self.query_one("#replicates", Input).value = str(exp.replicates)
        self._data_changed()

    def _data_changed(self) -> None:
        value = self.query_one("#data", Select).value
        custom = not isinstance(value, str)
        known = None if custom else self._known_train(*json.loads(value))
        if known is not None:
            self.query_one("#split-seed", Input).value = str(known.split_seed)  # the data set's own split
        self.set_class(custom, "-custom-data")
        for widget in self.query(".custom Select, .custom Input"):
            widget.disabled = not custom  # hidden fields stay out of the tab order
        self._changed()

    # ------------------------------------------------------------------ the picks
    def _int(self, selector: str, default: int | None) -> int | None:
        try:
            return int(self.query_one(selector, Input).value)
        except ValueError:
            return default

    def _whole(self) -> bool:
        return self.query_one("#what", Select).value == WHOLE

    def _gan(self) -> GanChoice | None:
        return self.gans.get(str(self.query_one("#gan", Select).value))

    def _family(self) -> str:
        chosen = self._gan()
        return chosen.family if chosen else str(self.query_one("#family", Select).value)

    def label(self) -> str:
        return compose_label(self.query_one("#ratio", Input).value, self._family(),
                             str(self.query_one("#sampler", Select).value))

    def configuration(self) -> tuple[Configuration | None, str | None]:
        try:
            return Configuration.parse(self.label()), None
        except ValueError as exc:
            return None, str(exc)

    def _known_train(self, fmt: str, root: str) -> TrainData | None:
        """The file's ``[data.train]`` of that data set (the template's first), with its split seed and file."""
        return next((e.train for e in [self._template(), *self.experiments.values()]
                     if e is not None and e.train is not None and (e.train.format, e.train.root) == (fmt, root)), None)

    def _train(self) -> tuple[str, str, int] | None:
        """(format, root, split seed) of the chosen data set; None while a custom one is incomplete."""
        value = self.query_one("#data", Select).value
        if isinstance(value, str):
            fmt, root = json.loads(value)
        else:
            fmt, root = self.query_one("#format", Select).value, self.query_one("#root", Input).value.strip()
            if not root or not isinstance(fmt, str):
                return None
        return fmt, root, self._int("#split-seed", 0) or 0

    def build(self) -> tuple[Build | None, str | None]:
        """The experiment the picks stand for, or why there is none (the one line shown)."""
        exp = self._template()
        if exp is None:
            return None, self.load_error or "reading experiments.toml…"
        replicates = self._int("#replicates", None)
        if replicates is None or not 1 <= replicates <= MAX_REPLICATES:
            return None, (f"replicates must be an integer from 1 to {MAX_REPLICATES:,} (the paper: 10; more: "
                          "ganaug run EXPERIMENT --replicates N)")
        if self._whole():
            only = tuple(self.query_one("#labels", SelectionList).selected)
            if not only:
                return None, "pick at least one of the experiment's labels"
            return Build(exp.name, exp.name, (), None if len(only) == len(exp.labels) else only, replicates), None
        conf, error = self.configuration()
        if conf is None:
            return None, error
        train = self._train()
        if train is None:
            return None, "name the data set: its format and root folder"
        name = self.query_one("#experiment", Input).value.strip()
        if not name:
            return None, "name the experiment it goes into"
        prior = self.specs.get(name)
        prior = prior if prior and "groups" in prior else None
        groups = ({g["name"]: list(g["labels"]) for g in prior["groups"]} if prior else {"baseline": [BASELINE]})
        if not any(conf.label in labels for labels in groups.values()):
            groups.setdefault(GROUP, []).append(conf.label)
        from engine.train.config import TEST_SET_NAMES

        own = TEST_SET_NAMES.get(train[0], train[0])
        extra = [t for t in self.query_one("#tests", SelectionList).selected if t in exp.test_sets
                 and t != TEST_SET_NAMES.get(exp.train.format if exp.train else "", "")]
        overrides = [f"groups={json.dumps(groups)}", f"baseline={json.dumps(prior['baseline'] if prior else BASELINE)}",
                     f"replicates={replicates}", f"test_sets={json.dumps([own, *extra])}"]
        if exp.train is None or (train[0], train[1], train[2]) != (exp.train.format, exp.train.root,
                                                                    exp.train.split_seed):
            known = self._known_train(train[0], train[1])
            data = (replace(known, split_seed=train[2]).classify_data() if known is not None
                    else {"format": train[0], "root": train[1], "split_seed": train[2]})
            overrides.append(f"data.train={json.dumps(data)}")
        chosen = self._gan()
        if conf.ratio.has_synthetic and conf.gan != "all":
            tag = TAG_OF[conf.gan]
            base = exp.gans.get(tag) or GanSpec(tag, conf.gan)
            if chosen is not None:  # a GAN with no finished pool yet gets the file's pool size, not the paper's
                spec = chosen.spec if chosen.spec.pool_per_class is not None or chosen.spec.translation else \
                    replace(chosen.spec, pool_per_class=base.pool_per_class)
            else:
                spec = replace(base, preset=str(self.query_one("#preset-gan", Select).value),
                               pool_per_class=None if base.translation else self._int("#pool", None))
            overrides.append(f"gans.{tag}={json.dumps(spec.to_table())}")
        return Build(exp.name, name, tuple(overrides), gan_run=chosen.run_id if chosen else None), None

    def blocker(self) -> str | None:
        """Why nothing can be queued now (None: the preview's runs can)."""
        build, why = self.build()
        if build is None:
            return why
        if build != self.plan_for:
            return "computing the preview…"
        return self.plan_error

    # ------------------------------------------------------------------ shown as the picks change
    def _changed(self) -> None:
        self.set_class(self._whole(), "-whole")
        self.set_class(self._gan() is None, "-new-gan")
        conf, error = self.configuration()
        check = self.query_one("#ratio-check", Static)
        check.set_class(conf is None, "-bad")
        check.update(f"✗ {error}" if conf is None else f"✓ {conf.label}")
        build, _ = self.build()
        if build is not None and build != self._asked:
            self._asked = build
            self._plan(build, None if self._whole() else self._train())
        self._show()

    def _show(self) -> None:
        conf, _ = self.configuration()
        train = self._train()
        sizes = self.sizes.get(train) if train else None
        counts = self.query_one("#counts", Static)
        build, _ = self.build()
        if conf is not None and sizes is not None:
            counts.update(counts_text(conf, sizes))
        else:
            waiting = conf is not None and train is not None and build is not None and build != self.plan_for
            counts.update("reading the data set's class sizes…" if waiting else "")
        blocker = self.blocker()
        if blocker is not None:  # engine lines name absolute paths: the workspace as the status line shows it
            blocker = blocker.replace(str(self.gapp.workspace), reads.display_path(self.gapp.workspace))
        plan = self.query_one("#plan", Static)
        plan.set_class(blocker is not None, "-blocked")
        if blocker is None:
            plan.update(plan_text(self.plan, self.plan_for))  # type: ignore[arg-type]
        else:
            plan.update(f"cannot enqueue: {blocker}" if blocker != "computing the preview…" else blocker)
        self.query_one("#enqueue", Button).disabled = blocker is not None
        self.query_one("#save", Button).disabled = blocker is not None or self._whole()

    @work(thread=True, exclusive=True, group="builder-plan")
    def _plan(self, build: Build, train: tuple[str, str, int] | None) -> None:
        """``engine.grid.preview`` of the build (and its data's class sizes, for the live counts, kept under
        ``train``: the fields as typed, since a relative or ``~`` root resolves to another path)."""
        from engine import grid

        worker = get_current_worker()
        sizes = None
        try:
            exp = build.experiment(self.gapp.workspace, self.gapp.experiments_file)
            if train is not None and exp.train is not None and not exp.unresolved:
                sizes = (train, grid.data_sizes(exp, self.gapp.workspace))
            planned = grid.preview(self.gapp.workspace, exp, only=list(build.only) if build.only else None,
                                   replicates=build.replicates)
        except (InputError, OSError) as exc:
            if not worker.is_cancelled:
                self.post_message(Loaded("builder-plan", (build, None, sizes), error=str(exc)))
            return
        if not worker.is_cancelled:
            self.post_message(Loaded("builder-plan", (build, planned, sizes)))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset" and isinstance(event.value, str):
            self.query_one("#ratio", Input).value = event.value
        elif event.select.id == "template":
            self._template_changed()
        elif event.select.id == "data":
            self._data_changed()
        else:
            self._changed()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self._changed()

    # ------------------------------------------------------------------ actions
    def action_enqueue(self) -> None:
        build, _ = self.build()
        blocker = self.blocker()
        if build is None or blocker is not None:
            self.notify(f"cannot enqueue: {blocker}", severity="error")
            return
        self.notify(f"queueing {build.name}…")
        self.gapp.act(actions.enqueue_build, build, self.gapp.experiments_file, read_only=self.gapp.read_only)

    def action_save(self, overwrite: bool = False) -> None:
        build, _ = self.build()
        if build is None or self.blocker() is not None or self._whole():
            self.notify("nothing to save: build a configuration first" if self._whole() else
                        f"cannot save: {self.blocker()}", severity="error")
            return
        if not overwrite and build.name in self.experiments:
            self.app.push_screen(
                Confirm("Replace an experiment?", f"experiments.toml already has an experiment {build.name!r}.\n"
                        "Saving replaces its table with this one.", yes="Replace it", no="Keep it"),
                lambda yes: yes and self.action_save(overwrite=True))
            return
        self._save(build, overwrite)

    @work(thread=True, group="actions")
    def _save(self, build: Build, overwrite: bool) -> None:
        from engine.config import save_experiment

        try:
            path = save_experiment(build.template, build.name, build.overrides, file=self.gapp.experiments_file,
                                   overwrite=overwrite)
        except InputError as exc:
            self.post_message(ActionDone(str(exc), ok=False))
            return
        self.post_message(ActionDone(f"saved experiment {build.name!r} into {path}; `ganaug run {build.name}` "
                                     "runs it"))
        self._load_choices()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "enqueue":
            self.action_enqueue()
        elif event.button.id == "save":
            self.action_save()

    def action_leave_field(self) -> None:
        self.set_focus(None)

