"""ONNX export (one graph per direction, dynamic batch, explicit z1/z2) and the ONNX backend.

The export is the slow part (seconds per direction on a CPU): the module fixture exports
each direction once, on first use into a temporary cache, as ``--backend onnx`` does.
"""

import shutil

import numpy as np
import onnx
import pytest
from astropy.io import fits

from survey2survey.model import store
from survey2survey.cli import main as cli_main
from survey2survey.runtime.seeds import object_seed
from survey2survey.errors import UsageError
from survey2survey.model import model_directions
from survey2survey.pipelines.translate import translate
from survey2survey.runtime.engines import OnnxEngine, TorchEngine
from survey2survey.runtime.export import TOLERANCE, cache_dir, create_session, export_model, graph_sha256, onnx_for
from survey2survey.surveys import get_survey, to_model_space
from test_translate import galaxy, make_tiny_model, write_inputs

SDSS, CFHT = get_survey("sdss"), get_survey("cfht")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S2S_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cache):
    """A tiny model and the ONNX file of each direction, exported on first use into the cache."""
    model_dir = make_tiny_model(tmp_path_factory.mktemp("onnx-model") / "tiny", seed=1)
    model = store.load_model(model_dir)
    paths = {name: onnx_for(model, name) for name in model_directions(model.config)}
    return model_dir, model, paths


def test_graphs_have_dynamic_batch_explicit_noise_inputs_and_provenance(exported, cache, capsys):
    model_dir, model, paths = exported
    assert set(paths) == {"sdss->cfht", "cfht->sdss"}
    for name, path in paths.items():
        assert path.parent == cache_dir(graph_sha256(model)) == cache / "onnx" / graph_sha256(model)
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["s2s.weights_sha256"] == model.weights_sha256 and meta["s2s.direction"] == name
        assert meta["s2s.graph_sha256"] == graph_sha256(model)
        assert float(meta["s2s.max_abs_diff"]) <= TOLERANCE
        inputs = {i.name: i.type.tensor_type.shape.dim for i in proto.graph.input}
        assert list(inputs) == ["x", "z1", "z2"]
        assert [o.name for o in proto.graph.output] == ["generator", "noisy"]
        # batch (and samples) symbolic; image sizes fixed
        assert inputs["x"][0].dim_param and not inputs["x"][0].dim_value
        assert inputs["z2"][1].dim_param and inputs["x"][2].dim_value == (64 if name == "sdss->cfht" else 136)
        size = 136 if name == "sdss->cfht" else 64
        assert [d.dim_value for d in inputs["z2"][2:]] == [5, size + 6, size + 6]
    # a second call finds the cached files instead of exporting again, and says nothing
    stamp = {n: p.stat().st_mtime_ns for n, p in paths.items()}
    capsys.readouterr()
    assert {n: onnx_for(model, n).stat().st_mtime_ns for n in paths} == stamp
    assert "exporting" not in capsys.readouterr().err


def test_a_first_export_is_said(tmp_path, cache, capsys):
    model = store.load_model(make_tiny_model(tmp_path / "tiny", seed=3))
    capsys.readouterr()
    onnx_for(model, "sdss->cfht")
    assert "s2s: note: exporting sdss->cfht of model tiny to ONNX, once for these weights" in capsys.readouterr().err


@pytest.mark.parametrize("direction", ["sdss->cfht", "cfht->sdss"])
def test_onnx_reproduces_torch_with_the_same_seed(exported, direction):
    model_dir, model, paths = exported
    d = model_directions(model.config)[direction]
    src = d.source
    x = np.stack([to_model_space(galaxy(src, i)[0], src) for i in range(3)])
    keys = np.array([object_seed(11, f"obj{i}") for i in range(3)], dtype=np.int64)
    torch_engine = TorchEngine(model, d, "cpu", "fp32")
    onnx_engine = OnnxEngine(model, d, "cpu")
    assert onnx_engine.provider == "CPUExecutionProvider" and onnx_engine.describe() == "onnx/cpu/CPUExecutionProvider"
    for kwargs in ({"samples": 2}, {"noise": False}):
        a = torch_engine.run(x, keys, **kwargs)
        b = onnx_engine.run(x, keys, **kwargs)
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) <= 1e-4
    # batch size 1 through the same graph (dynamic batch)
    assert float(np.abs(torch_engine.run(x[1:2], keys[1:2]) - onnx_engine.run(x[1:2], keys[1:2])).max()) <= 1e-4


def test_translate_with_the_onnx_backend(exported, tmp_path):
    model_dir, model, paths = exported
    write_inputs(tmp_path / "in", SDSS, 2)
    a = translate([tmp_path / "in"], "cfht", model_dir=model_dir, out_dir=tmp_path / "onnx", backend="onnx", seed=2)
    b = translate([tmp_path / "in"], "cfht", model_dir=model_dir, out_dir=tmp_path / "torch", backend="torch", seed=2)
    assert a.translated == b.translated == 2 and a.provider == "CPUExecutionProvider"
    assert a.backend == "onnx/cpu/CPUExecutionProvider"
    for name in ("J0000.cfht.fits", "J0001.cfht.fits"):
        with fits.open(tmp_path / "onnx" / name) as h:
            assert h[0].header["S2SBACK"] == "onnx/cpu/CPUExecutionProvider"
            assert h[0].header["S2SPROV"] == "CPUExecutionProvider"
            m_onnx = to_model_space(h[0].data, CFHT)
        m_torch = to_model_space(fits.getdata(tmp_path / "torch" / name), CFHT)
        assert float(np.abs(m_onnx - m_torch).max()) <= 1e-4


def test_onnx_on_the_cpu_gets_the_cpu_batch_even_when_a_gpu_was_guessed(exported, tmp_path, monkeypatch):
    # onnxruntime-gpu lists its CUDA provider on CPU-only hosts too: the first guess can say
    # GPU; the session runs on the CPU, and the batch must be the CPU's, not 512 images
    import survey2survey.translators.learned as learned
    from survey2survey.runtime.device import DEFAULT_BATCH

    model_dir, model, paths = exported
    write_inputs(tmp_path / "in", SDSS, 2)
    monkeypatch.setattr(learned, "ort_has_cuda", lambda: True)
    report = translate([tmp_path / "in"], "cfht", model_dir=model_dir, out_dir=tmp_path / "out", backend="onnx",
                       device="auto")
    assert report.provider == "CPUExecutionProvider" and report.translated == 2
    assert report.batch_size == DEFAULT_BATCH["cpu"]


def test_stale_onnx_files_are_not_used(exported, tmp_path):
    """A graph exported from other weights is ignored and a fresh one exported."""
    model_dir, model, paths = exported
    other_dir = make_tiny_model(tmp_path / "other", seed=2)
    (other_dir / "onnx").mkdir()
    shutil.copy(paths["cfht->sdss"], other_dir / "onnx" / "cfht-to-sdss.onnx")  # the first model's graph
    other = store.load_model(other_dir)
    fresh = onnx_for(other, "cfht->sdss")
    assert fresh.parent == cache_dir(graph_sha256(other))
    meta = {p.key: p.value for p in onnx.load(str(fresh)).metadata_props}
    assert meta["s2s.weights_sha256"] == other.weights_sha256 != model.weights_sha256


def test_a_graph_of_the_same_weights_under_another_config_is_not_used(exported):
    """The same weights under another modules' config (a speck repair added: it has no weights)
    make another graph: the cached one is not used, a fresh one is exported beside it."""
    model_dir, model, paths = exported
    changed = store.load_model(model_dir)
    name = next(iter(changed.config["modules"]))
    changed.config["modules"][name]["kwargs"]["repair"] = {"fwhm_px": [3.0] * 5}  # any change of a description
    assert changed.weights_sha256 == model.weights_sha256 and graph_sha256(changed) != graph_sha256(model)
    fresh = onnx_for(changed, "cfht->sdss")
    assert fresh != paths["cfht->sdss"] and fresh.parent == cache_dir(graph_sha256(changed))
    meta = {p.key: p.value for p in onnx.load(str(fresh)).metadata_props}
    assert meta["s2s.graph_sha256"] == graph_sha256(changed)


def test_a_graph_exported_by_other_code_is_not_used(exported, monkeypatch):
    """The same weights and config under another version of the package's code (another
    forward: a graph cached by it would be stale) make another key."""
    from survey2survey.runtime import export

    model_dir, model, paths = exported
    before = graph_sha256(model)
    assert len(export.code_sha256()) == 64
    monkeypatch.setattr(export, "code_sha256", lambda: "0" * 64)
    assert graph_sha256(model) != before


def test_export_command_writes_into_the_model_directory(exported, tmp_path, capsys):
    model_dir, model, paths = exported
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    code = cli_main(["export", "--model", str(copy), "--format", "onnx", "--direction", "cfht->sdss"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cfht->sdss" in out and "x, z1, z2 -> generator, noisy" in out
    target = copy / "onnx" / "cfht-to-sdss.onnx"
    onnx.checker.check_model(str(target))
    # exported there, found there (no new cache entry needed)
    assert onnx_for(store.load_model(copy), "cfht->sdss") == target
    with pytest.raises(UsageError, match="exists"):
        export_model(copy, directions=["cfht->sdss"])
    assert cli_main(["export", "--model", str(copy), "--format", "tensorrt"]) == 2


def test_cpu_fallback_is_quiet_and_reports_the_provider(exported, capfd):
    model_dir, model, paths = exported
    session, provider = create_session(paths["cfht->sdss"], "auto")
    assert provider == session.get_providers()[0]
    captured = capfd.readouterr()
    # this machine has no GPU: ONNX Runtime's complaints about CUDA libraries stay silent
    if provider == "CPUExecutionProvider":
        assert "CUDA" not in captured.err and "onnxruntime" not in captured.err
    session, provider = create_session(paths["cfht->sdss"], "cpu")
    assert provider == "CPUExecutionProvider"
