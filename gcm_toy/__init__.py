"""The toy climate model: a spectral dynamical core in Fortran, run from Python.

    >>> from gcm_toy import Model
    >>> model = Model("held-suarez", ["output_interval_hours=24"])
    >>> ds = model.run(1200, out="hs/output.nc")     # xarray Dataset, CF netCDF4 on disk
    >>> model.save_checkpoint("hs/day1200.bin")

Configuration: :mod:`gcm_toy.config` (TOML presets in ``gcm_toy/presets``);
the model object: :mod:`gcm_toy.model`; outputs and their attributes:
:mod:`gcm_toy.output`; the run loop and crash semantics: :mod:`gcm_toy.run`.
The Fortran core is ``gcm_toy/src`` (see docs/gcm-dynamics.md), wrapped by
``gcm_toy/bindings`` into the extension ``gcm_toy._gcm_core``.
"""
from gcm_toy.config import (INITIAL_STATE_NAMES, PHYSICS_NAMES, GCMConfig, list_presets, load_config,
                            parse_overrides)
from gcm_toy.model import Failure, GCMError, Model, check_configuration, upgrade_checkpoint
from gcm_toy.output import open_output

__all__ = ["Model", "check_configuration", "GCMConfig", "GCMError", "Failure", "load_config", "parse_overrides",
           "list_presets", "open_output", "PHYSICS_NAMES", "INITIAL_STATE_NAMES", "upgrade_checkpoint"]
