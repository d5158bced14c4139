"""Orchestration: coupled runs, online scoring, sweeps, and the ``fkb`` command line."""
