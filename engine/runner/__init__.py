"""The run machinery (pueue's shape): the registry of run kinds, one run's execution (``worker``), the
foreground entry every "run this" command shares (``launch``) and the background engine (``daemon``).

Store access stays in ``engine.store``; the paper's steps (data, gans, synth, train, analysis) register
their run kinds here and never depend on how a run was started.
"""
