"""The moist aquaplanet from Python: reference physics, diagnostics, restarts,
training data, emulators plugged in, interface checks, `fkb data` and
`fkb gcm run --physics emulator` (T10 L10, a few days)."""
from __future__ import annotations

import dataclasses
import filecmp

import numpy as np
import pytest
import xarray as xr

from fkb_cli import main
from emulators import interface
from emulators.modelfile import read_model_file, write_model_file
from gcm_toy import Model, load_config
from gcm_toy.output import DIAGNOSTICS

T10 = "aquaplanet-t10"
GRAVITY = 9.80616


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """`fkb data` at T10: 0.5-day spin-up, 2 days sampled every 6 h (8 x 512
    columns), plus the final checkpoint; and a tiny emulator trained on it
    for one epoch."""
    from emulators.architectures import Hyperparameters
    from emulators.train import train_emulator

    root = tmp_path_factory.mktemp("aquaplanet")
    status = main(["data", "--preset", T10, "--days", "2", "--spinup-days", "0.5", "--interval-hours", "6",
                   "--out", str(root / "data")])
    assert status == 0
    hp = Hyperparameters(depth=1, width=16, epochs=1, batch_size=256, seed=0)
    result = train_emulator(None, root / "data" / "training.nc", hyperparameters=hp, out_dir=root / "emu",
                            verbose=0)
    return {"root": root, "data": root / "data" / "training.nc",
            "checkpoint": root / "data" / "checkpoint_day00002.500.bin",
            "emulator": root / "emu" / "emulator.fkb", "result": result}


def test_aquaplanet_presets_are_moist_with_the_reference_physics():
    for name, truncation in (("aquaplanet", 21), (T10, 10)):
        config = load_config(name)
        assert (config.truncation, config.nlev, config.humidity) == (truncation, 10, True)
        assert (config.physics, config.initial_state) == ("reference", "aquaplanet")
        assert config.output_interval_hours in (6.0, 24.0)


@pytest.mark.parametrize("overrides, named", [
    ({"humidity": False}, "humidity"),
    ({"physics": "emulator"}, "emulator"),
    ({"physics": "emulator", "emulator": ["a.fkb", "b.fkb"]}, "one model file"),
    ({"physics": "ensemble", "emulator": "a.fkb"}, "at least two"),
    ({"emulator_precision": "float16"}, "emulator_precision"),
])
def test_bad_moist_options_raise_a_value_error_naming_them(overrides, named):
    with pytest.raises(ValueError, match=named):
        Model(T10, overrides)


def test_reference_run_writes_the_physics_diagnostics_as_interval_means(tmp_path):
    model = Model(T10)
    assert model.physics_mode == "reference"
    ds = model.run(1, out=tmp_path / "run.nc", progress=False)
    assert ds.attrs["run_status"] == "completed" and ds.sizes["time"] == 4
    for name in ("PRECT", "QFLX", "SHFLX", "LHFLX", "SST", "SOLIN", "FSNT", "FSNS", "FLNT", "FLNS", "CLOUD"):
        assert ds[name].attrs["units"] == DIAGNOSTICS[name]["units"], name
        assert ds[name].attrs["standard_name"] == DIAGNOSTICS[name]["standard_name"], name
        assert ds[name].attrs["cell_methods"].startswith("time: mean"), name
    assert ds.CLOUD.dims == ("time", "lev", "lat", "lon") and ds.PRECT.dims == ("time", "lat", "lon")
    gw = ds.gw / ds.gw.sum()

    def global_mean(da):
        return float((da.mean("lon") * gw).sum("lat").mean("time"))

    # Qobs SST: 27 C at the equator, 0 C poleward of 60 degrees
    assert 299.0 < float(ds.SST.max()) < 300.2 and abs(float(ds.SST.min()) - 273.15) < 1e-3
    assert 0 < global_mean(ds.PRECT) * 86400 < 10                     # mm/day
    assert float(ds.PRECT.min()) >= 0 and float(ds.QFLX.min()) >= -1e-7
    assert 150 < global_mean(ds.FLNT) < 320 and 0 < global_mean(ds.FSNT) < global_mean(ds.SOLIN)
    assert 0.0 <= float(ds.CLOUD.min()) and float(ds.CLOUD.max()) <= 1.0
    np.testing.assert_allclose(ds.LHFLX, 2.501e6 * ds.QFLX, rtol=0.01, atol=1e-3)   # L_v E
    assert float(ds.SOLIN.max()) > 300 and float(ds.SOLIN.min()) == 0.0     # 6-hour means: night sides


def test_reference_physics_restarts_bit_for_bit(tmp_path):
    whole = Model(T10)
    whole_ds = whole.run(1, out=tmp_path / "whole.nc", progress=False)
    whole.save_checkpoint(tmp_path / "whole_end.bin")
    first = Model(T10)
    first.run(0.5, progress=False)
    first.save_checkpoint(tmp_path / "half.bin")
    second = Model.from_checkpoint(tmp_path / "half.bin")
    second_ds = second.run(0.5, out=tmp_path / "second.nc", progress=False)
    second.save_checkpoint(tmp_path / "second_end.bin")
    assert filecmp.cmp(tmp_path / "whole_end.bin", tmp_path / "second_end.bin", shallow=False)
    second_half = whole_ds.isel(time=slice(2, None))
    for name in ("t", "q", "ps", "t_mean", "q_mean", "PRECT", "FLNT", "CLOUD"):
        assert np.array_equal(second_half[name].values, second_ds[name].values), name


def test_reference_physics_gives_the_same_bits_on_one_and_two_threads(tmp_path):
    """The reference physics runs its columns on OpenMP threads; each
    column's random numbers are keyed by its id, so the thread count must not
    change a bit (checkpoints compared byte for byte)."""
    import os
    import subprocess
    import sys

    script = ("import sys; from gcm_toy import Model; m = Model('aquaplanet-t10'); m.advance(12); "
              "m.save_checkpoint(sys.argv[1])")
    paths = []
    for threads in (1, 2):
        path = tmp_path / f"threads{threads}.bin"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_DYNAMIC="false")
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        paths.append(path)
    assert filecmp.cmp(paths[0], paths[1], shallow=False)


def test_training_data_follow_the_emulator_interface(tiny_data):
    from emulators.data import open_dataset

    ds = open_dataset(tiny_data["data"])        # checks names, dims and units
    assert dict(ds.sizes) == {"time": 8, "lev": 10, "lat": 16, "lon": 32}
    for name in interface.INPUT_VARIABLES + interface.OUTPUT_VARIABLES:
        assert ds[name].attrs["units"] == interface.VARIABLES[name].units
        assert ds[name].dims == interface.VARIABLES[name].dims
    raw = xr.open_dataset(tiny_data["data"], decode_times=False)
    np.testing.assert_allclose(np.diff(raw.time), 0.25)               # every 6 h
    assert raw.attrs["run_status"] == "completed" and raw.attrs["physics"] == "reference"
    assert raw.T.encoding["chunksizes"] == (1, 10, 16, 32)
    # the columns are where they belong: water budget -sum(PHQ dp/g) = PRECT per column,
    # night columns get no sunlight, the temperature falls with height
    sigma_half = load_config(T10).sigma_half or np.linspace(0, 1, 11)
    dsigma = np.diff(np.asarray(sigma_half))[:, None, None]
    column_water = -(raw.PHQ.values.astype(np.float64) * dsigma[None]).sum(axis=1) * raw.PS.values / GRAVITY
    np.testing.assert_allclose(column_water, raw.PRECT.values, rtol=1e-3, atol=1e-8)
    assert float(raw.PRECT.mean()) > 1e-6
    assert (raw.SOLIN.values == 0).mean() > 0.3 and float(raw.SOLIN.max()) > 1000
    assert float((raw.T.isel(lev=0) - raw.T.isel(lev=-1)).max()) < 0
    # latitude is latitude: the lowest level is ~30 K warmer at the equator than near the poles,
    # and varies little along a latitude circle
    t_bottom = raw.T.isel(lev=-1)
    zonal = t_bottom.mean(("time", "lon")).values
    assert zonal[7:9].min() - max(zonal[0], zonal[-1]) > 20
    assert float(t_bottom.std("lon").max()) < 3
    assert 9.0e4 < float(raw.PS.min()) and float(raw.PS.max()) < 1.1e5


def test_training_data_train_an_emulator(tiny_data):
    result = tiny_data["result"]
    assert len(result.history["loss"]) == 1 and np.isfinite(result.history["loss"][0])
    spec = read_model_file(tiny_data["emulator"])
    assert spec.input_names == interface.input_names(10) and spec.output_units == interface.output_units(10)


def test_emulator_runs_from_the_reference_checkpoint_or_crashes_cleanly(tiny_data, tmp_path):
    model = Model.from_checkpoint(tiny_data["checkpoint"], {"physics": "emulator",
                                                            "emulator": str(tiny_data["emulator"])})
    assert model.physics_mode == "emulator" and model.time_days == 2.5
    ds = model.run(2, out=tmp_path / "coupled.nc", progress=False)
    assert ds.attrs["run_status"] in ("completed", "crashed")
    assert ds.attrs["emulator"] == str(tiny_data["emulator"])
    assert "CLOUD" not in ds and "PRECT" in ds         # only the reference diagnoses clouds
    if ds.attrs["run_status"] == "crashed":
        assert ds.attrs["crash_reason"] and 2.5 <= ds.attrs["crash_time_days"] <= 4.5
        assert ds.sizes["time"] == int((ds.attrs["crash_time_days"] - 2.5) * 4 + 1e-9)
    else:
        assert ds.sizes["time"] == 8


def test_ensemble_of_one_network_twice_is_that_network(tiny_data):
    path = str(tiny_data["emulator"])
    runs = {}
    for physics, files in (("emulator", [path]), ("ensemble", [path, path])):
        model = Model(T10, {"physics": physics, "emulator": files}, initial_state=False, keep_training_batch=True)
        model.load_checkpoint(tiny_data["checkpoint"])
        assert model.physics_mode == physics
        assert model.advance(1) is None
        runs[physics] = model.training_batch()
    np.testing.assert_allclose(runs["ensemble"][1], runs["emulator"][1], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(runs["ensemble"][0], runs["emulator"][0])


def test_limiters_keep_precipitation_and_humidity_non_negative(tiny_data, tmp_path):
    # the tiny emulator dries some columns below zero; shifting its PRECT
    # output by -1 mm/s makes it rain negative everywhere
    from emulators.modelfile import Normalization

    spec = read_model_file(tiny_data["emulator"])
    offset = np.array(spec.output_normalization.offset, dtype=np.float32)
    offset[-1] -= 1.0
    dry = _rewrite(tiny_data["emulator"], tmp_path / "dry.fkb",
                   output_normalization=Normalization(offset, spec.output_normalization.scale))
    out = {}
    for limit in (False, True):
        model = Model(T10, {"physics": "emulator", "emulator": str(dry), "limit_humidity": limit,
                            "limit_precipitation": limit, "emulator_precision": "float64"},
                      initial_state=False, keep_training_batch=True)
        model.load_checkpoint(tiny_data["checkpoint"])
        assert model.advance(1) is None
        out[limit] = model.training_batch()
    nlev = 10
    for limit, (x, y, labels) in out.items():
        q, dqdt = x[:, nlev:2 * nlev], y[:, nlev:2 * nlev]
        if limit:
            assert y[:, -1].min() == 0.0                                    # PRECT clipped
            assert (q + labels["dt"] * dqdt).min() >= -1e-15                # q stays >= 0
        else:
            assert y[:, -1].max() < -0.5
            assert (q + labels["dt"] * dqdt).min() < -1e-6
    np.testing.assert_array_equal(out[True][1][:, :nlev], out[False][1][:, :nlev])   # T untouched


def _rewrite(source, target, **changes):
    spec = read_model_file(source)
    write_model_file(dataclasses.replace(spec, sha256=None, **changes), target)
    return target


def test_guard_fallback_of_every_column_is_the_reference_physics(tiny_data):
    """The emulator guard: with a distance limit no column meets, every
    column is computed by the reference physics, bit for bit as the
    reference run computes it; with the default limit some columns are
    flagged, and clip changes the inputs of those outside the range."""
    outputs, means = {}, {}
    for name, options in (("reference", {"physics": "reference"}),
                          ("all", {"guard": "fallback", "guard_factor": 1e-9}),
                          ("default", {"guard": "fallback"}), ("off", {}), ("clip", {"guard": "clip"})):
        if name != "reference":
            options = {"physics": "emulator", "emulator": str(tiny_data["emulator"]), **options}
        model = Model(T10, options, initial_state=False, keep_training_batch=True)
        model.load_checkpoint(tiny_data["checkpoint"])
        assert model.advance(1, accumulate=True) is None
        outputs[name] = model.training_batch()[1]
        means[name] = model.diagnostic_means()[0]
    np.testing.assert_array_equal(outputs["all"], outputs["reference"])
    assert means["all"]["PHYS_FALLBACK"].min() == 1.0 and means["all"]["GUARD_FLAGGED"].min() == 1.0
    flagged = means["default"]["GUARD_FLAGGED"].ravel() > 0
    assert 0 < flagged.sum() < flagged.size
    np.testing.assert_array_equal(means["default"]["PHYS_FALLBACK"].ravel() > 0, flagged)
    np.testing.assert_array_equal(outputs["default"][flagged], outputs["reference"][flagged])
    np.testing.assert_array_equal(outputs["default"][~flagged], outputs["off"][~flagged])
    assert "GUARD_FLAGGED" not in means["off"] and means["clip"]["PHYS_FALLBACK"].max() == 0.0


def test_partial_coupling_mixes_the_network_and_the_reference_physics(tiny_data):
    """Partial coupling: a spin-up is the reference physics alone; a weight
    a gives a * network + (1 - a) * reference; the chosen output groups come
    from the reference; a linear ramp grows the weight with model time."""
    emulator = {"physics": "emulator", "emulator": str(tiny_data["emulator"])}
    outputs = {}
    for name, options in (("reference", {"physics": "reference"}), ("network", emulator),
                          ("spin-up", {**emulator, "network_start_day": 100.0}),
                          ("half", {**emulator, "network_weight": 0.5}),
                          ("groups", {**emulator, "reference_outputs": ["FSNT", "PRECT"]}),
                          ("ramp", {**emulator, "weight_ramp": "linear", "ramp_start_day": 2.0, "ramp_days": 2.0})):
        model = Model(T10, options, initial_state=False, keep_training_batch=True)
        model.load_checkpoint(tiny_data["checkpoint"])
        assert model.advance(1) is None
        _, outputs[name], labels = model.training_batch()
    reference, network = outputs["reference"], outputs["network"]
    np.testing.assert_array_equal(outputs["spin-up"], reference)
    np.testing.assert_allclose(outputs["half"], 0.5 * network + 0.5 * reference, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(outputs["groups"][:, [-5, -1]], reference[:, [-5, -1]])
    np.testing.assert_array_equal(outputs["groups"][:, :-5], network[:, :-5])
    weight = (labels["time_days"] - 2.0) / 2.0                      # the state the physics saw
    np.testing.assert_allclose(outputs["ramp"], weight * network + (1 - weight) * reference, rtol=1e-12,
                               atol=1e-20)


@pytest.mark.parametrize("overrides, message", [
    ({"network_weight": 1.5}, "option 'network_weight': must be in \\[0, 1\\]"),
    ({"weight_ramp": "linear"}, "option 'ramp_days': must be positive for weight_ramp = 'linear'"),
    ({"reference_outputs": ["PRECIP"]}, "option 'reference_outputs': unknown output group 'PRECIP'"),
    ({"guard": "maybe"}, "option 'guard': must be one of off, clip, fallback"),
    ({"physics": "reference", "guard": "clip"}, "option 'guard': physics 'reference' runs no network"),
    ({"guard": "clip", "guard_margin": -1.0}, "option 'guard_margin': must be finite and >= 0"),
])
def test_bad_guard_options_are_refused(tiny_data, overrides, message):
    options = {"physics": "emulator", "emulator": str(tiny_data["emulator"]), **overrides}
    if options["physics"] == "reference":
        del options["emulator"]
    with pytest.raises(ValueError, match=message):
        Model(T10, options, initial_state=False)


def test_interface_mismatch_is_refused_naming_the_difference(tiny_data, tmp_path):
    spec = read_model_file(tiny_data["emulator"])
    inputs = list(spec.inputs)
    inputs[3] = ("X_4", "K")
    bad_name = _rewrite(tiny_data["emulator"], tmp_path / "bad_name.fkb", inputs=inputs)
    with pytest.raises(ValueError, match=r"input 4 is 'X_4' \[K\], the GCM expects 'T_4' \[K\]"):
        Model(T10, {"physics": "emulator", "emulator": str(bad_name)})
    outputs = list(spec.outputs)
    outputs[-1] = ("PRECT", "mm day-1")
    bad_units = _rewrite(tiny_data["emulator"], tmp_path / "bad_units.fkb", outputs=outputs)
    with pytest.raises(ValueError, match=r"'PRECT' \[mm day-1\], the GCM expects 'PRECT' \[kg m-2 s-1\]"):
        Model(T10, {"physics": "ensemble", "emulator": [str(tiny_data["emulator"]), str(bad_units)]})
    with pytest.raises(ValueError, match="emulator has 24 inputs, the GCM needs 22"):
        Model(T10, {"physics": "emulator", "emulator": str(tiny_data["emulator"]), "nlev": 9})


def test_cli_runs_the_emulator_and_reports_a_mismatch_in_one_line(tiny_data, tmp_path, capsys):
    status, out, err = run_cli(["gcm", "run", "--restart", tiny_data["checkpoint"], "--days", "0.5",
                                "--physics", "emulator", "--emulator", tiny_data["emulator"],
                                "--limit-precipitation", "--out", tmp_path / "emu"], capsys)
    assert status == 0, err
    assert "gcm_day00002.500.nc" in out
    ds = xr.open_dataset(tmp_path / "emu" / "gcm_day00002.500.nc", decode_times=False)
    assert ds.attrs["physics"] == "emulator" and "limit_precipitation = true" in ds.attrs["configuration"]
    assert ds.attrs["run_status"] in ("completed", "crashed")

    bad = _rewrite(tiny_data["emulator"], tmp_path / "bad.fkb",
                   inputs=[("T_1", "C")] + list(read_model_file(tiny_data["emulator"]).inputs)[1:])
    status, out, err = run_cli(["gcm", "run", "--preset", T10, "--days", "0.5", "--physics", "emulator",
                                "--emulator", bad, "--out", tmp_path / "bad"], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "emulator input 1 is 'T_1' [C], the GCM expects 'T_1' [K]" in err
    status, out, err = run_cli(["gcm", "run", "--preset", T10, "--days", "0.5", "--physics", "ensemble",
                                "--emulator", tiny_data["emulator"], "--out", tmp_path / "bad"], capsys)
    assert status == 1 and "at least two" in err


def test_coupled_run_of_the_case_study_takes_the_emulator(tiny_data):
    from coupler.sweep import CoupledRunConfig, coupled_run

    config = CoupledRunConfig(preset=T10, reference_physics="reference", days=1.0, window_days=1.0,
                              output_interval_hours=6.0, initial_checkpoint=str(tiny_data["checkpoint"]))
    reference = coupled_run(None, config)
    assert reference.run.attrs["run_status"] == "completed" and reference.run.attrs["physics"] == "reference"
    coupled = coupled_run(tiny_data["emulator"], config)
    assert coupled.run.attrs["physics"] == "emulator"
    assert coupled.run.attrs["run_status"] in ("completed", "crashed")
    if coupled.run.attrs["run_status"] == "crashed":
        assert coupled.run.attrs["crash_reason"] and "crash_time_days" in coupled.run.attrs


def test_non_finite_emulator_output_ends_the_run_as_a_physics_crash(tiny_data, tmp_path):
    from emulators.modelfile import Normalization

    spec = read_model_file(tiny_data["emulator"])
    last = spec.layers[-1]
    bias = np.array(last.params["bias"], dtype=np.float32)
    bias[2] = 3e38                                            # TPHYSTND_3 overflows to +Inf
    scale = np.array(spec.output_normalization.scale, dtype=np.float32)
    scale[2] = 3e38
    layers = spec.layers[:-1] + [dataclasses.replace(last, params={**last.params, "bias": bias})]
    broken = _rewrite(tiny_data["emulator"], tmp_path / "inf.fkb", layers=layers,
                      output_normalization=Normalization(spec.output_normalization.offset, scale))
    model = Model.from_checkpoint(tiny_data["checkpoint"], {"physics": "emulator", "emulator": str(broken)})
    ds = model.run(1, out=tmp_path / "crash.nc", progress=False)
    assert ds.attrs["run_status"] == "crashed" and ds.attrs["crash_status"] == "physics error"
    assert ds.attrs["crash_time_days"] == pytest.approx(2.5 - 1 / 24)     # the first step sees level n-1
    assert ds.attrs["crash_variable"] == "TPHYSTND_3" and ds.attrs["crash_level"] == 3
    assert "TPHYSTND_3" in ds.attrs["crash_reason"] and ds.sizes["time"] == 0
    assert model.failure().status == 5


def test_fkb_data_continues_a_checkpoint_and_refuses_dry_physics(tiny_data, tmp_path, capsys):
    status, out, err = run_cli(["data", "--restart", tiny_data["checkpoint"], "--days", "0.5", "--interval-hours",
                                "12", "--out", tmp_path / "more"], capsys)
    assert status == 0, err
    assert "1 samples of 512 columns" in out and (tmp_path / "more" / "checkpoint_day00003.bin").is_file()
    more = xr.open_dataset(tmp_path / "more" / "training.nc", decode_times=False)
    assert float(more.time[0]) == pytest.approx(3.0 - 2 / 24)     # level n-1 of the step 71 -> 72
    status, out, err = run_cli(["data", "--preset", "held-suarez-t10", "--days", "1", "--out", tmp_path / "dry"],
                               capsys)
    assert status == 1 and "moist physics" in err and len(err.strip().splitlines()) == 1
