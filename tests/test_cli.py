"""The ``s2s`` entry point: fast start-up, version, clean errors."""

import json
import os
import subprocess
import sys

from survey2survey import __version__

HEAVY = ("torch", "galsim", "photutils", "reproject", "onnxruntime", "astropy.io.fits", "matplotlib", "scipy")


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "survey2survey", *args], capture_output=True, text=True, **kw)


def test_importing_the_cli_does_not_import_heavy_modules():
    code = (
        "import sys, survey2survey.cli; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_commands_and_version():
    out = _run("--help")
    assert out.returncode == 0
    assert "--version" in out.stdout
    from survey2survey.cli import COMMANDS

    for name in COMMANDS:
        assert name in out.stdout
    ver = _run("--version")
    assert ver.returncode == 0 and __version__ in ver.stdout


def test_unknown_command_is_usage_error():
    out = _run("no-such-command")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_bad_survey_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text("[x\n")
    out = _run("--surveys", str(bad), "surveys")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "not valid TOML" in lines[0]


def test_surveys_json_includes_user_survey(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("[toy]\nbands = ['g', 'r']\npixel_scale = 0.5\ncutout_size = 32\nzero_point = 25\n")
    env = dict(os.environ, S2S_SURVEYS=str(f))
    out = _run("surveys", "--json", env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["toy"]["bands"] == ["g", "r"] and data["sdss"]["cutout_size"] == 64


def test_surveys_table_shows_each_surveys_psf_and_depth(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("[toy]\nbands = ['g', 'i']\npixel_scale = 0.5\ncutout_size = 32\nzero_point = 25\n")
    out = _run("surveys", env=dict(os.environ, S2S_SURVEYS=str(f), COLUMNS="250"))
    assert out.returncode == 0, out.stderr
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("│")}
    assert 'kolmogorov 1.40" (r)' in rows["sdss"] and "22.2 (r)" in rows["sdss"]
    assert 'kolmogorov 0.70" (r)' in rows["cfht"] and "25.0 (r)" in rows["cfht"]
    assert rows["toy"].rstrip("│ ").endswith("-")  # no PSF nor depth in its definition
