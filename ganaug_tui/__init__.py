"""``ganaug-tui``: the terminal UI, a thin view over ``engine`` and its run store.

Everything here reads the store through ``engine.store`` and changes it only through the store's
commands (cancel, retry, pause); quitting the UI never stops a run.
"""
