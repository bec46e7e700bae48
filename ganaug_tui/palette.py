"""The command palette's commands (ctrl+p): every key binding active on the current screen, by its name.

Built from the screen's active bindings, so the palette offers exactly what the keys offer there (actions a
screen's ``check_action`` hides are absent, disabled ones are left out), each with its key and tooltip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# Navigation keys of lists and tables are not commands anyone looks for in a palette.
_SKIP = {"move", "page", "jump", "command_palette"}


class ScreenCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        seen: set[tuple[int, str]] = set()
        app = self.app
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            name = binding.action.split("(")[0]
            ident = (id(active.node), binding.action)
            if not active.enabled or name in _SKIP or ident in seen or not binding.description:
                continue
            seen.add(ident)
            keys = app.get_key_display(binding) or key
            help_text = f"{keys} · {active.tooltip or binding.tooltip}".rstrip(" ·")
            yield binding.description, help_text, partial(app.run_action, binding.action, active.node)

    async def discover(self) -> Hits:
        for text, help_text, callback in sorted(self._commands(), key=lambda c: c[0]):
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for text, help_text, callback in self._commands():
            score = matcher.match(f"{text} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
