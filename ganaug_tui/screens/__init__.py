"""The five screens (one module each), reached with keys 1-5, and the modal dialogs they open."""
