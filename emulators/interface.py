"""The emulator interface: the variables an emulator reads and writes.

This module is the single source of truth for the names, units and order of
the emulator's inputs and outputs. The GCM writes its training data with
these names and units, the training code stacks them into vectors in this
order, and the exported model file carries the element names and units, so
the GCM can check a plugged emulator against the same definitions.

The layout mirrors SP-CAM (Rasp, Pritchard & Gentine 2018; Ott et al. 2020):

inputs  ``[T(1..nlev), Q(1..nlev), PS, SOLIN, SHFLX, LHFLX]``   (2 nlev + 4)
outputs ``[TPHYSTND(1..nlev), PHQ(1..nlev), FSNT, FSNS, FLNT, FLNS, PRECT]``
(2 nlev + 5)

Level ``k = 1`` is the top of the model, ``k = nlev`` the level nearest the
surface. In a model file the elements are named ``T_1 ... T_nlev``, ``PS``,
and so on.

Datasets have the dimensions ``time``, ``lev``, ``lat``, ``lon``; every
(time, lat, lon) column is one sample, and samples are stacked in C order of
those three dimensions.

Sign conventions (as in CAM): FSNT and FSNS are net *downward* shortwave
fluxes, FLNT and FLNS net *upward* longwave fluxes, all in W m-2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

__all__ = [
    "DEFAULT_NLEV", "SAMPLE_DIMS", "LEVEL_DIM", "Variable", "VARIABLES",
    "INPUT_VARIABLES", "OUTPUT_VARIABLES", "COORDINATE_ATTRS", "Layout",
    "input_names", "output_names", "input_units", "output_units",
    "stack_inputs", "stack_outputs", "unstack", "check_dataset",
    "variable_attrs", "nlev_of",
]

DEFAULT_NLEV = 10
LEVEL_DIM = "lev"
SAMPLE_DIMS = ("time", "lat", "lon")
"""The dimensions that enumerate samples (columns), in stacking order."""


@dataclass(frozen=True)
class Variable:
    """One variable of the interface: its name, CF units and description."""

    name: str
    units: str
    long_name: str
    standard_name: str | None
    per_level: bool

    @property
    def dims(self) -> tuple[str, ...]:
        """Dimensions of the variable in a dataset (in the order the GCM writes them)."""
        return ("time", LEVEL_DIM, "lat", "lon") if self.per_level else SAMPLE_DIMS

    def width(self, nlev: int) -> int:
        """Number of elements in a stacked vector: nlev or 1."""
        return nlev if self.per_level else 1

    def element_names(self, nlev: int) -> list[str]:
        """``T_1 .. T_nlev`` for a level variable, ``[name]`` otherwise."""
        if self.per_level:
            return [f"{self.name}_{k}" for k in range(1, nlev + 1)]
        return [self.name]


_VARIABLE_LIST = (
    # inputs
    Variable("T", "K", "air temperature", "air_temperature", True),
    Variable("Q", "kg kg-1", "specific humidity", "specific_humidity", True),
    Variable("PS", "Pa", "surface pressure", "surface_air_pressure", False),
    Variable("SOLIN", "W m-2", "solar insolation at the top of the atmosphere",
             "toa_incoming_shortwave_flux", False),
    Variable("SHFLX", "W m-2", "surface sensible heat flux (upward)",
             "surface_upward_sensible_heat_flux", False),
    Variable("LHFLX", "W m-2", "surface latent heat flux (upward)",
             "surface_upward_latent_heat_flux", False),
    # outputs
    Variable("TPHYSTND", "K s-1", "temperature tendency of the cloud and radiation physics",
             None, True),
    Variable("PHQ", "kg kg-1 s-1", "specific humidity tendency of the cloud and radiation physics",
             None, True),
    Variable("FSNT", "W m-2", "net downward shortwave flux at the top of the atmosphere",
             "toa_net_downward_shortwave_flux", False),
    Variable("FSNS", "W m-2", "net downward shortwave flux at the surface",
             "surface_net_downward_shortwave_flux", False),
    Variable("FLNT", "W m-2", "net upward longwave flux at the top of the atmosphere",
             "toa_net_upward_longwave_flux", False),
    Variable("FLNS", "W m-2", "net upward longwave flux at the surface",
             "surface_net_upward_longwave_flux", False),
    Variable("PRECT", "kg m-2 s-1", "total precipitation flux", "precipitation_flux", False),
)

VARIABLES: Mapping[str, Variable] = {v.name: v for v in _VARIABLE_LIST}
INPUT_VARIABLES: tuple[str, ...] = ("T", "Q", "PS", "SOLIN", "SHFLX", "LHFLX")
OUTPUT_VARIABLES: tuple[str, ...] = ("TPHYSTND", "PHQ", "FSNT", "FSNS", "FLNT", "FLNS", "PRECT")

COORDINATE_ATTRS: Mapping[str, Mapping[str, str]] = {
    "time": {"long_name": "time", "standard_name": "time", "axis": "T"},
    LEVEL_DIM: {"long_name": "sigma at layer midpoints (k = 1 at the top)",
                "standard_name": "atmosphere_sigma_coordinate", "units": "1",
                "positive": "down", "axis": "Z"},
    "lat": {"long_name": "latitude", "standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"long_name": "longitude", "standard_name": "longitude", "units": "degrees_east", "axis": "X"},
}
"""CF attributes of the coordinates (time's units and calendar are the writer's choice)."""


def variable_attrs(name: str) -> dict[str, str]:
    """The CF attributes (units, long_name, standard_name) of an interface variable."""
    var = _variable(name)
    attrs = {"units": var.units, "long_name": var.long_name}
    if var.standard_name:
        attrs["standard_name"] = var.standard_name
    return attrs


def _variable(name: str) -> Variable:
    try:
        return VARIABLES[name]
    except KeyError:
        raise ValueError(f"unknown interface variable {name!r}; known: {', '.join(VARIABLES)}") from None


@dataclass(frozen=True)
class Layout:
    """Which variables, in which order, make the stacked input and output vectors.

    The default is the full interface; a user-given subset or order (for a
    model that reads fewer variables, say) is another Layout.
    """

    inputs: tuple[str, ...] = INPUT_VARIABLES
    outputs: tuple[str, ...] = OUTPUT_VARIABLES
    nlev: int = DEFAULT_NLEV

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.nlev < 1:
            raise ValueError(f"nlev must be at least 1, got {self.nlev}")
        for label, names in (("inputs", self.inputs), ("outputs", self.outputs)):
            if not names:
                raise ValueError(f"a layout needs at least one variable in {label}")
            for name in names:
                _variable(name)
            if len(set(names)) != len(names):
                raise ValueError(f"variable listed twice in {label}: {', '.join(names)}")
        overlap = set(self.inputs) & set(self.outputs)
        if overlap:
            raise ValueError(f"variables both input and output: {', '.join(sorted(overlap))}")

    @classmethod
    def for_dataset(cls, ds: xr.Dataset, inputs: Sequence[str] | None = None,
                    outputs: Sequence[str] | None = None) -> "Layout":
        """The layout for ``ds`` (nlev from its ``lev`` dimension), checking the
        dataset holds every variable with the right dimensions and units."""
        layout = cls(tuple(inputs) if inputs is not None else INPUT_VARIABLES,
                     tuple(outputs) if outputs is not None else OUTPUT_VARIABLES,
                     nlev_of(ds))
        check_dataset(ds, layout.inputs + layout.outputs)
        return layout

    @property
    def n_inputs(self) -> int:
        return sum(VARIABLES[v].width(self.nlev) for v in self.inputs)

    @property
    def n_outputs(self) -> int:
        return sum(VARIABLES[v].width(self.nlev) for v in self.outputs)

    def input_names(self) -> list[str]:
        return _element_names(self.inputs, self.nlev)

    def output_names(self) -> list[str]:
        return _element_names(self.outputs, self.nlev)

    def input_units(self) -> list[str]:
        return _element_units(self.inputs, self.nlev)

    def output_units(self) -> list[str]:
        return _element_units(self.outputs, self.nlev)

    def input_slices(self) -> dict[str, slice]:
        """Where each input variable sits in the stacked input vector."""
        return _slices(self.inputs, self.nlev)

    def output_slices(self) -> dict[str, slice]:
        """Where each output variable sits in the stacked output vector."""
        return _slices(self.outputs, self.nlev)

    def stack_inputs(self, ds: xr.Dataset) -> np.ndarray:
        """Inputs of every column of ``ds`` as ``(n_samples, n_inputs)``, in the
        units of the interface (loads the data)."""
        return stack(ds, self.inputs, self.nlev)

    def stack_outputs(self, ds: xr.Dataset) -> np.ndarray:
        """Outputs of every column of ``ds`` as ``(n_samples, n_outputs)``."""
        return stack(ds, self.outputs, self.nlev)


def _element_names(variables: Iterable[str], nlev: int) -> list[str]:
    return [name for v in variables for name in _variable(v).element_names(nlev)]


def _element_units(variables: Iterable[str], nlev: int) -> list[str]:
    return [_variable(v).units for v in variables for _ in range(_variable(v).width(nlev))]


def _slices(variables: Iterable[str], nlev: int) -> dict[str, slice]:
    out, start = {}, 0
    for v in variables:
        width = _variable(v).width(nlev)
        out[v] = slice(start, start + width)
        start += width
    return out


def input_names(nlev: int = DEFAULT_NLEV) -> list[str]:
    """Element names of the stacked input vector: ``T_1 .. T_nlev, Q_1 .., PS, SOLIN, SHFLX, LHFLX``."""
    return Layout(nlev=nlev).input_names()


def output_names(nlev: int = DEFAULT_NLEV) -> list[str]:
    """Element names of the stacked output vector: ``TPHYSTND_1 .., PHQ_1 .., FSNT, FSNS, FLNT, FLNS, PRECT``."""
    return Layout(nlev=nlev).output_names()


def input_units(nlev: int = DEFAULT_NLEV) -> list[str]:
    """CF units of each element of the stacked input vector."""
    return Layout(nlev=nlev).input_units()


def output_units(nlev: int = DEFAULT_NLEV) -> list[str]:
    """CF units of each element of the stacked output vector."""
    return Layout(nlev=nlev).output_units()


def nlev_of(ds: xr.Dataset) -> int:
    """Number of model levels of a dataset (its ``lev`` dimension)."""
    if LEVEL_DIM not in ds.sizes:
        raise ValueError(f"dataset has no {LEVEL_DIM!r} dimension (dimensions: {', '.join(map(str, ds.sizes))})")
    return int(ds.sizes[LEVEL_DIM])


def check_dataset(ds: xr.Dataset, variables: Iterable[str] = INPUT_VARIABLES + OUTPUT_VARIABLES) -> None:
    """Raise ValueError (one line, naming the variable) unless ``ds`` holds each
    of ``variables`` with the interface's dimensions and units."""
    for name in variables:
        var = _variable(name)
        if name not in ds.variables:
            raise ValueError(f"dataset has no variable {name!r} ({var.long_name}, {var.units})")
        da = ds[name]
        if set(da.dims) != set(var.dims):
            raise ValueError(f"variable {name!r} has dimensions ({', '.join(map(str, da.dims))}), "
                             f"expected ({', '.join(var.dims)})")
        units = da.attrs.get("units")
        if units is None:
            raise ValueError(f"variable {name!r} has no units attribute (expected {var.units!r})")
        if str(units).strip() != var.units:
            raise ValueError(f"variable {name!r} has units {units!r}, expected {var.units!r}")


def stack(ds: xr.Dataset, variables: Sequence[str], nlev: int | None = None) -> np.ndarray:
    """Stack ``variables`` of ``ds`` into ``(n_samples, n_elements)``.

    Samples run over (time, lat, lon) in C order; level variables contribute
    their levels top to bottom. The dtype is the common dtype of the variables.
    """
    nlev = nlev_of(ds) if nlev is None else nlev
    columns = []
    for name in variables:
        var = _variable(name)
        if var.per_level:
            values = ds[name].transpose(*SAMPLE_DIMS, LEVEL_DIM).values
            if values.shape[-1] != nlev:
                raise ValueError(f"variable {name!r} has {values.shape[-1]} levels, expected {nlev}")
            columns.append(values.reshape(-1, nlev))
        else:
            columns.append(ds[name].transpose(*SAMPLE_DIMS).values.reshape(-1, 1))
    return np.concatenate(columns, axis=1)


def stack_inputs(ds: xr.Dataset) -> np.ndarray:
    """The interface's inputs of every column of ``ds``: ``(n_samples, 2 nlev + 4)``."""
    return stack(ds, INPUT_VARIABLES)


def stack_outputs(ds: xr.Dataset) -> np.ndarray:
    """The interface's outputs of every column of ``ds``: ``(n_samples, 2 nlev + 5)``."""
    return stack(ds, OUTPUT_VARIABLES)


def unstack(array: np.ndarray, variables: Sequence[str], like: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`stack`: a Dataset of ``variables`` (with CF
    attributes) on the time, lat, lon and lev coordinates of ``like``."""
    nlev = nlev_of(like)
    shape = tuple(like.sizes[d] for d in SAMPLE_DIMS)
    n_samples = int(np.prod(shape))
    width = sum(_variable(v).width(nlev) for v in variables)
    if array.shape != (n_samples, width):
        raise ValueError(f"array has shape {array.shape}, expected ({n_samples}, {width}) for "
                         f"{', '.join(variables)} on {dict(zip(SAMPLE_DIMS, shape))} with nlev={nlev}")
    coords = {d: like[d] for d in (*SAMPLE_DIMS, LEVEL_DIM) if d in like.coords}
    data_vars = {}
    for name, slc in _slices(variables, nlev).items():
        var = VARIABLES[name]
        block = array[:, slc]
        if var.per_level:
            values = np.moveaxis(block.reshape(*shape, nlev), -1, 1)
            data_vars[name] = (("time", LEVEL_DIM, "lat", "lon"), values, variable_attrs(name))
        else:
            data_vars[name] = (SAMPLE_DIMS, block.reshape(shape), variable_attrs(name))
    return xr.Dataset(data_vars, coords=coords)
