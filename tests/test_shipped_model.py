"""The model shipped in models/sdss-cfht: intact, documented, and the default of translate."""

import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from survey2survey.cli import main
from survey2survey.data import example_dir
from survey2survey.fits_io import verify_fits
from survey2survey.model import default_model_dir, load_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "sdss-cfht"


def test_shipped_model_loads_and_matches_its_model_card():
    model = load_model(SHIPPED)
    assert model.config["method"] == "ours"
    assert set(model.config["directions"]) == {"sdss->cfht", "cfht->sdss"}
    n = sum(p.numel() for m in model.modules.values() for p in m.parameters())
    assert n == 1_425_093 + 1_019_269 + 2 * 22_010  # both generators and noise emulators
    card = (ROOT / "docs" / "model-card.md").read_text()
    assert model.weights_sha256 in card
    assert f"{n:,}" in card
    iterations = sum(s["iterations"] for s in model.config["steps"].values())
    assert f"{iterations:,} iterations" in card


def test_translate_uses_the_shipped_model_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("S2S_MODEL", raising=False)
    assert default_model_dir().resolve() == SHIPPED.resolve()
    src = sorted((example_dir() / "sdss").glob("*.fits"))[0]
    code = main(["translate", str(src), "--to", "cfht", "--out", str(tmp_path), "--seed", "1", "--workers", "0"])
    assert code == 0
    (out,) = tmp_path.glob("*.fits")
    verify_fits(out)
    with fits.open(out) as hdul:
        h = hdul[0].header
        assert hdul[0].data.shape == (5, 136, 136) and np.isfinite(hdul[0].data).all()
        assert h["S2SHASH"] == load_model(SHIPPED).weights_sha256
        assert h["S2SDIR"] == "sdss->cfht" and h["SURVEY"] == "cfht"
    assert re.match(rf"{src.stem}\.cfht\.fits$", out.name)
