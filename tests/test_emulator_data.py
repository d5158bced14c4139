"""The emulator interface and training data: names and stacking order, the
synthetic dataset, time splits, streaming normalization, and the batch stream
(every sample once per epoch, seeded shuffling, bounded memory)."""
from __future__ import annotations

import tracemalloc

import dask.array
import numpy as np
import pytest
import xarray as xr

from emulators import interface
from emulators.data import (ColumnStream, NormalizationStats, SplitFractions, compute_normalization, iter_blocks,
                            open_dataset, split_by_time)
from emulators.interface import (INPUT_VARIABLES, OUTPUT_VARIABLES, Layout, check_dataset, input_names,
                                 output_names, stack_inputs, stack_outputs, unstack)
from emulators.synthetic import GRAVITY, synthetic_dataset, write_synthetic_dataset


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return synthetic_dataset(n_time=20, nlev=10, nlat=4, nlon=6, seed=3)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "small.nc", n_time=20, nlev=10, nlat=4,
                                   nlon=6, seed=3, time_block=7)


# ----------------------------------------------------------------- interface
def test_element_names_follow_the_stacked_order():
    names = input_names(10)
    assert len(names) == 24
    assert names[:10] == [f"T_{k}" for k in range(1, 11)]
    assert names[10:20] == [f"Q_{k}" for k in range(1, 11)]
    assert names[20:] == ["PS", "SOLIN", "SHFLX", "LHFLX"]
    outputs = output_names(10)
    assert len(outputs) == 25
    assert outputs[0] == "TPHYSTND_1" and outputs[9] == "TPHYSTND_10" and outputs[10] == "PHQ_1"
    assert outputs[20:] == ["FSNT", "FSNS", "FLNT", "FLNS", "PRECT"]
    assert len(input_names(3)) == 10 and len(output_names(3)) == 11


def test_element_units_are_the_interface_units():
    units = interface.input_units(10)
    assert units[0] == "K" and units[10] == "kg kg-1"
    assert units[20:] == ["Pa", "W m-2", "W m-2", "W m-2"]
    out = interface.output_units(10)
    assert out[0] == "K s-1" and out[10] == "kg kg-1 s-1"
    assert out[20:] == ["W m-2"] * 4 + ["kg m-2 s-1"]
    assert interface.variable_attrs("PRECT")["standard_name"] == "precipitation_flux"


def test_stacking_puts_each_column_in_one_row(small):
    x = stack_inputs(small)
    y = stack_outputs(small)
    assert x.shape == (20 * 4 * 6, 24) and y.shape == (20 * 4 * 6, 25)
    t, j, i = 7, 2, 5
    row = (t * 4 + j) * 6 + i
    expected = np.concatenate([small["T"].values[t, :, j, i], small["Q"].values[t, :, j, i],
                               [small[v].values[t, j, i] for v in ("PS", "SOLIN", "SHFLX", "LHFLX")]])
    np.testing.assert_array_equal(x[row], expected)
    assert y[row, 10] == small["PHQ"].values[t, 0, j, i]
    assert y[row, 24] == small["PRECT"].values[t, j, i]


def test_stacking_does_not_depend_on_the_dimension_order(small):
    transposed = small.transpose("lon", "lev", "time", "lat", ...)
    np.testing.assert_array_equal(stack_inputs(transposed), stack_inputs(small))


def test_unstack_inverts_stack(small):
    y = stack_outputs(small)
    back = unstack(y, OUTPUT_VARIABLES, small)
    for name in OUTPUT_VARIABLES:
        np.testing.assert_array_equal(back[name].transpose(*small[name].dims).values, small[name].values)
        assert back[name].attrs["units"] == small[name].attrs["units"]
    with pytest.raises(ValueError, match="expected"):
        unstack(y[:, :3], OUTPUT_VARIABLES, small)


def test_check_dataset_names_the_problem(small):
    with pytest.raises(ValueError, match="no variable 'SOLIN'"):
        check_dataset(small.drop_vars("SOLIN"))
    wrong = small.copy()
    wrong["T"] = wrong["T"].assign_attrs(units="degC")
    with pytest.raises(ValueError, match="'T' has units 'degC', expected 'K'"):
        check_dataset(wrong)
    flat = small.copy()
    flat["PS"] = flat["T"]
    with pytest.raises(ValueError, match="'PS' has dimensions"):
        check_dataset(flat)


def test_layout_selects_variables_and_refuses_nonsense(small):
    layout = Layout.for_dataset(small, inputs=["Q", "PS"], outputs=["PRECT"])
    assert layout.n_inputs == 11 and layout.n_outputs == 1
    assert layout.input_names()[-1] == "PS"
    np.testing.assert_array_equal(layout.stack_inputs(small)[:, 10], small["PS"].values.ravel())
    with pytest.raises(ValueError, match="unknown interface variable 'U'"):
        Layout(inputs=("T", "U"))
    with pytest.raises(ValueError, match="both input and output"):
        Layout(inputs=("T",), outputs=("T",))


# ----------------------------------------------------------------- synthetic
def test_synthetic_file_is_cf_annotated_and_opens_lazily(small_file, small):
    ds = open_dataset(small_file, time_chunk=4)
    assert isinstance(ds["T"].data, dask.array.Array)
    assert ds["T"].data.chunks[0] == (4, 4, 4, 4, 4)
    assert ds["T"].attrs["standard_name"] == "air_temperature"
    assert ds["LHFLX"].attrs["units"] == "W m-2"
    assert ds["lev"].attrs["positive"] == "down"
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    assert (ds["time"].values[1] - ds["time"].values[0]) == np.timedelta64(6, "h")
    # written in blocks of 7 steps, yet the same values as generated at once
    np.testing.assert_array_equal(ds["PHQ"].values, small["PHQ"].values)
    np.testing.assert_array_equal(ds["SOLIN"].values, small["SOLIN"].values)


def test_synthetic_outputs_are_physical_functions_of_the_inputs():
    ds = synthetic_dataset(n_time=8, nlev=10, nlat=4, nlon=8, noise=0.0)
    # precipitation closes the column water budget of the drying
    column_drying = -(ds["PHQ"] * (1.0 / 10)).sum("lev") * ds["PS"] / GRAVITY
    np.testing.assert_allclose(ds["PRECT"].values, column_drying.values, rtol=1e-5)
    night = ds["SOLIN"].values == 0
    assert night.any() and np.all(ds["FSNT"].values[night] == 0)
    assert np.all(ds["PRECT"].values >= 0) and np.all(ds["Q"].values > 0)
    assert 180 < float(ds["T"].min()) and float(ds["T"].max()) < 330


# --------------------------------------------------------------------- split
def test_split_is_contiguous_disjoint_and_ordered(small):
    splits = split_by_time(small, SplitFractions(0.7, 0.15, 0.15))
    assert [splits[k].sizes["time"] for k in ("train", "validation", "test")] == [14, 3, 3]
    joined = np.concatenate([splits[k]["time"].values for k in ("train", "validation", "test")])
    np.testing.assert_array_equal(joined, small["time"].values)


def test_split_fractions_are_validated(small):
    with pytest.raises(ValueError, match="sum to 1.2"):
        SplitFractions(0.8, 0.3, 0.1)
    with pytest.raises(ValueError, match="not three"):
        SplitFractions.parse("0.7,0.3")
    assert SplitFractions.parse("0.5, 0.25,0.25") == SplitFractions(0.5, 0.25, 0.25)
    with pytest.raises(ValueError, match="'validation'.*empty"):
        split_by_time(small.isel(time=slice(0, 4)), SplitFractions(0.9, 0.05, 0.05))


# ------------------------------------------------------------- normalization
def test_streaming_normalization_equals_in_memory_statistics(small):
    layout = Layout.for_dataset(small)
    stats = compute_normalization(small, layout, time_block=3)
    x = stack_inputs(small).astype(np.float64)
    y = stack_outputs(small).astype(np.float64)
    assert stats.n_samples == x.shape[0]
    np.testing.assert_allclose(stats.input_offset, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.input_scale, x.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats.output_offset, y.mean(axis=0), rtol=1e-9, atol=1e-30)
    # one scale per output variable: the RMS over levels of the per-level std
    tphys = np.sqrt(np.mean(y[:, :10].var(axis=0)))
    np.testing.assert_allclose(stats.output_scale[:10], tphys, rtol=1e-9)
    np.testing.assert_allclose(stats.output_scale[24], y[:, 24].std(), rtol=1e-9)
    element = compute_normalization(small, layout, time_block=5, output_scaling="element")
    np.testing.assert_allclose(element.output_scale[10:20], np.maximum(
        y[:, 10:20].std(axis=0), 1e-3 * np.sqrt(np.mean(y[:, 10:20].var(axis=0)))), rtol=1e-9)


def test_normalization_floors_near_constant_elements(small):
    ds = small.copy()
    ds["T"] = ds["T"].copy()
    ds["T"].values[:, 0] = 210.0          # constant top level
    ds["PS"] = ds["PS"] * 0 + 1.0e5       # constant variable
    layout = Layout.for_dataset(ds)
    stats = compute_normalization(ds, layout, relative_floor=1e-2)
    pooled_t = np.sqrt(np.mean(stack_inputs(ds)[:, :10].astype(np.float64).var(axis=0)))
    np.testing.assert_allclose(stats.input_scale[0], 1e-2 * pooled_t, rtol=1e-9)
    assert stats.input_scale[20] == 1.0 and stats.input_offset[20] == pytest.approx(1.0e5)
    assert np.all(np.isfinite(stats.normalize_inputs(stack_inputs(ds))))


def test_normalization_survives_a_netcdf_round_trip(small, tmp_path):
    stats = compute_normalization(small, Layout.for_dataset(small))
    back = NormalizationStats.load(stats.save(tmp_path / "norm.nc"))
    assert back.input_names == stats.input_names and back.output_units == stats.output_units
    np.testing.assert_array_equal(back.output_scale, stats.output_scale)
    assert back.output_scaling == "variable" and back.n_samples == stats.n_samples


def test_non_finite_values_are_reported_by_name(small):
    ds = small.copy()
    ds["Q"] = ds["Q"].copy()
    ds["Q"].values[5, 3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="input 'Q' has NaN"):
        compute_normalization(ds, Layout.for_dataset(ds), time_block=4)


# -------------------------------------------------------------------- stream
def _rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = np.concatenate([x, y], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_an_epoch_visits_every_sample_once_with_inputs_and_targets_paired(small):
    layout = Layout.for_dataset(small)
    stats = compute_normalization(small, layout)
    stream = ColumnStream(small, layout, stats, batch_size=50, seed=1, time_block=3, memory_budget=200_000)
    assert stream.blocks_per_buffer >= 2 and len(stream._buffers) >= 2
    batches = list(stream)
    assert len(batches) == len(stream) == int(np.ceil(480 / 50))
    assert all(len(x) == 50 for x, _ in batches[:-1]) and len(batches[-1][0]) == 480 - 9 * 50
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    expected = _rows(stats.normalize_inputs(stack_inputs(small)), stats.normalize_outputs(stack_outputs(small)))
    np.testing.assert_array_equal(_rows(x, y), expected)


def test_shuffling_is_seeded_and_changes_with_the_epoch(small):
    layout = Layout.for_dataset(small)
    stats = compute_normalization(small, layout)

    def epoch(seed, number=0, shuffle=True):
        stream = ColumnStream(small, layout, stats, 64, shuffle=shuffle, seed=seed, time_block=2,
                              memory_budget=150_000)
        stream.set_epoch(number)
        return np.concatenate([x for x, _ in stream])

    first = epoch(seed=5)
    np.testing.assert_array_equal(first, epoch(seed=5))
    assert not np.array_equal(first, epoch(seed=6))
    second = epoch(seed=5, number=1)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(_rows(first, first[:, :1]), _rows(second, second[:, :1]))
    np.testing.assert_array_equal(epoch(seed=5, shuffle=False), stats.normalize_inputs(stack_inputs(small)))


def test_batches_are_random_access(small):
    layout = Layout.for_dataset(small)
    stats = compute_normalization(small, layout)
    stream = ColumnStream(small, layout, stats, 40, seed=2, time_block=2, memory_budget=100_000)
    in_order = [stream[i][0] for i in range(len(stream))]
    for i in (7, 0, len(stream) - 1, 3):
        np.testing.assert_array_equal(stream[i][0], in_order[i])
    with pytest.raises(IndexError):
        stream[len(stream)]


def test_stream_memory_stays_within_budget_on_a_dataset_five_times_larger(tmp_path):
    path = write_synthetic_dataset(tmp_path / "large.nc", n_time=80, nlev=10, nlat=16, nlon=32, time_block=16)
    ds = open_dataset(path, time_chunk=None)
    layout = Layout.for_dataset(ds)
    stats = compute_normalization(ds, layout, time_block=8)
    budget = 1_600_000
    stream = ColumnStream(ds, layout, stats, 256, seed=0, time_block=2, memory_budget=budget)
    assert stream.blocks_per_buffer == 2
    dataset_bytes = stream.n_samples * 4 * (layout.n_inputs + layout.n_outputs)
    assert dataset_bytes > 5 * budget
    stream[0]  # imports and caches warmed up outside the measurement
    stream.set_epoch(1)
    tracemalloc.start()
    try:
        seen = sum(len(x) for x, _ in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == stream.n_samples
    # The arrays stay within the budget; xarray's objects of each read (freed
    # by the garbage collector) add a few hundred kB whatever the block size.
    assert peak < budget + 512 * 1024, f"loader peaked at {peak} bytes, budget {budget}"
    assert peak < dataset_bytes / 4


def test_stream_refuses_a_budget_below_one_block(small):
    layout = Layout.for_dataset(small)
    stats = compute_normalization(small, layout)
    with pytest.raises(ValueError, match="memory budget"):
        ColumnStream(small, layout, stats, 10, time_block=8, memory_budget=10_000)


def test_iter_blocks_reads_the_split_in_order(small):
    layout = Layout.for_dataset(small)
    x = np.concatenate([bx for bx, _ in iter_blocks(small.isel(time=slice(3, 11)), layout, time_block=3)])
    np.testing.assert_array_equal(x, stack_inputs(small.isel(time=slice(3, 11))))


# ---------------------------------------------------------------------- open
def test_open_dataset_reports_missing_files_and_bad_units(tmp_path, small):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        open_dataset(tmp_path / "nope.nc")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        open_dataset(str(tmp_path / "*.nc"))
    (tmp_path / "text.nc").write_text("not netCDF\n")
    with pytest.raises(ValueError, match="text.nc: not a readable netCDF file"):
        open_dataset(tmp_path / "text.nc")
    bad = small.copy()
    bad["SHFLX"] = bad["SHFLX"].assign_attrs(units="W/m2")
    bad.to_netcdf(tmp_path / "bad.nc")
    with pytest.raises(ValueError, match="'SHFLX' has units"):
        open_dataset(tmp_path / "bad.nc")


def test_several_files_are_concatenated_along_time(tmp_path, small):
    small.isel(time=slice(0, 8)).to_netcdf(tmp_path / "part1.nc")
    small.isel(time=slice(8, 20)).to_netcdf(tmp_path / "part2.nc")
    ds = open_dataset(str(tmp_path / "part*.nc"))
    assert ds.sizes["time"] == 20
    np.testing.assert_array_equal(stack_inputs(ds), stack_inputs(small))
