"""Run kinds that exercise the engine itself (queue, checkpoints, resume, failures) without any ML.

- ``sleep``: waits ``seconds`` (default 1), stopping early on request unless ``ignore_stop`` is true
  (a run that never honours a stop request: exercises the SIGKILL after the grace period).
- ``count``: counts ``n`` steps (``interval`` seconds each), metric ``count`` = step**2 at every step,
  checkpoint every ``checkpoint_every`` steps, resumes from its checkpoint; writes ``result.json``.
- ``fail``: raises after ``steps`` steps (a run that fails, for tests and for checking a setup).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.fsutil import atomic_write_json
from engine.runner.kinds import RunContext, Validator, register_kind


def _typed(**types: Callable[[Any], Any]) -> Validator:
    """A validator that converts the given keys (when present) to their types, refusing what does not convert."""

    def check(config: dict[str, Any], workspace: Path) -> dict[str, Any]:
        out = dict(config)
        for key, typ in types.items():
            if key in out:
                try:
                    out[key] = typ(out[key])
                except (TypeError, ValueError):
                    raise InputError(f"config key {key!r}: expected {typ.__name__}, got {out[key]!r}") from None
        return out

    return check


def _pause(ctx: RunContext, seconds: float) -> bool:
    """Sleep up to ``seconds`` in short slices; True if a stop was requested meanwhile."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if ctx.stop_requested():
            return True
        time.sleep(min(left, 0.05))
    return ctx.stop_requested()


@register_kind("sleep", validate=_typed(seconds=float, ignore_stop=bool))
def sleep_kind(ctx: RunContext) -> None:
    seconds = float(ctx.config.get("seconds", 1.0))
    ctx.progress(0, 1, "sleeping")
    if ctx.config.get("ignore_stop"):
        time.sleep(seconds)
    elif _pause(ctx, seconds):
        return
    ctx.progress(1, 1, "slept")


@register_kind("count", validate=_typed(n=int, interval=float, checkpoint_every=int))
def count_kind(ctx: RunContext) -> None:
    n = int(ctx.config.get("n", 100))
    interval = float(ctx.config.get("interval", 0.01))
    every = max(1, int(ctx.config.get("checkpoint_every", 10)))
    state = ctx.load_checkpoint()
    start = int(state["step"]) if state else 0
    if state:
        ctx.log.info("resuming from step %d", start)
    for step in range(start, n):
        if _pause(ctx, interval):
            ctx.save_checkpoint({"step": step})
            ctx.log.info("stop requested: checkpointed at step %d", step)
            return
        ctx.metric("count", float(step * step), step)
        ctx.progress(step + 1, n, "counting")
        if (step + 1) % every == 0:
            ctx.save_checkpoint({"step": step + 1})
    atomic_write_json(ctx.run_dir / "result.json", {"n": n, "resumed_from": start})


@register_kind("fail", validate=_typed(steps=int, message=str))
def fail_kind(ctx: RunContext) -> None:
    for step in range(int(ctx.config.get("steps", 0))):
        ctx.metric("step", float(step), step)
    raise RuntimeError(str(ctx.config.get("message", "this run fails on purpose")))
