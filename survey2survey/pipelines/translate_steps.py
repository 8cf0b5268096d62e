"""The steps of ``s2s translate`` that run in the worker processes: read, and write.

* :func:`read_chunk`: check an existing output, read the cutout, tell its survey and
  let the translator prepare it (:class:`Record`);
* :func:`write_chunk`: let the translator finish a translation (native units, output
  grid) and write it with its provenance (:class:`WriteJob`);
* :func:`translate_chunk`: both, with the translation in between, for a translator that
  runs per cutout.

The outputs of one task are written whole under temporary names, flushed to disk together
and only then given their names (:class:`~survey2survey.atomic.AtomicGroup`): one flush
of the file system per task instead of one per file.

Every function here takes and returns small picklable records, never raises for one
bad input (the record says what went wrong) and touches no torch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from survey2survey.atomic import AtomicGroup
from survey2survey.errors import CutoutError, OutputExistsError, S2SError, first_line
from survey2survey.fits_io import commit_outputs, is_s2s_output, read_cutout, verify_fits, write_cutout
from survey2survey.fits_io import header_text as fits_text
from survey2survey.runtime.seeds import object_seed
from survey2survey.surveys import Survey
from survey2survey.translators.base import Prepared, Translator

__all__ = [
    "Job", "Setup", "Record", "WriteJob", "read_chunk", "write_chunk", "translate_chunk", "header_text", "same_output",
    "SKIPPED",
]

#: A write's result when another run wrote the same output meanwhile (a race, not a failure).
SKIPPED = "skipped: output written meanwhile by another run"


@dataclass
class Job:
    index: int
    source: object  # fits_io.CutoutSource
    out_path: Path


@dataclass
class Setup:
    """What every worker task needs (pickled with each task; the translator leaves its heavy state out)."""

    translator: Translator
    given: Survey | None  # --from
    overwrite: bool
    seed: int = 0
    samples: int = 1
    preview: bool = False  # a PNG beside each output (input | output per band)


@dataclass
class Record:
    """One input after reading: prepared for the translator, or skipped, or failed."""

    index: int
    status: str  # "ok", "skipped", "failed"
    message: str = ""
    prepared: Prepared | None = None
    warnings: list[str] = field(default_factory=list)
    replace: bool = False  # an existing broken output is redone
    preview: tuple | None = None  # (input cube native, its bands, its survey, arcsec/px) for the PNG


@dataclass
class WriteJob:
    index: int
    out_path: Path
    object_id: str
    source_file: str
    source_paths: list[Path]
    data: np.ndarray  # (S, C, H, W) as the translator's run() returned it
    record: Record  # its prepared.x dropped


def header_text(text: str) -> str:
    """One line of printable ASCII (FITS HISTORY cards accept nothing else)."""
    text = " ".join(str(text).split())
    return text.encode("ascii", "replace").decode("ascii")


def _existing_output(job: Job, setup: Setup, rec: Record) -> bool:
    """True when the input is done with: its whole output exists (skipped), or a file that
    is not ours is in the way (failed).  A broken output of ours is marked for redoing.

    Without ``--overwrite`` only a file carrying our provenance (``S2SVER``) is ever
    replaced: a survey's own file at the output name (no CHECKSUM, no provenance) is the user's.
    """
    if setup.overwrite or not os.path.lexists(job.out_path):
        return False
    if not is_s2s_output(job.out_path):
        rec.status = "failed"
        rec.message = (f"{job.source.path}: output {job.out_path} exists and is not an s2s output "
                       "(output exists; use --overwrite to replace it)")
        return True
    try:
        verify_fits(job.out_path)
    except CutoutError as exc:
        rec.replace = True
        reason = " ".join(exc.reason.split())[:120]
        rec.warnings.append(f"existing output was broken and is redone ({reason})")
        return False
    rec.status, rec.message = "skipped", "output exists"
    return True


def same_output(path: Path, object_id: str, seed: int, samples: int, model_sha: str | None) -> bool:
    """True when ``path`` is a whole output of ours for the same object, seed, sample count and model.

    What a concurrent run into the same directory writes: the loser of the race keeps it.
    """
    from astropy.io import fits

    if not is_s2s_output(path):
        return False
    try:
        verify_fits(path)
        with fits.open(path, memmap=False) as hdul:
            header, n = hdul[0].header, sum(1 for h in hdul if h.name.startswith("SAMPLE")) + 1
    except (CutoutError, OSError):
        return False
    return (header.get("S2SOBJ") == fits_text(object_id) and header.get("S2SSEED") == seed and n == samples
            and (model_sha is None or header.get("S2SHASH") == model_sha))


def _read_source(job: Job, setup: Setup):
    """Read ``job``'s cutout and tell its source survey: (Cutout, Survey) or CutoutError."""
    sources, target = setup.translator.sources, setup.translator.target
    partial = setup.translator.partial_bands
    if setup.given is not None:
        survey = setup.given
        cut = read_cutout(job.source, survey, partial=partial)
    else:
        try:
            cut = read_cutout(job.source, None, partial=partial)
            detected = cut.survey
        except CutoutError:
            if len(sources) != 1:
                raise
            detected = None  # e.g. unnamed bands and no survey keyword: try the only source
        if detected is None:
            if len(sources) != 1:
                raise CutoutError(
                    job.source.path,
                    "cannot tell the source survey (no SURVEY/TELESCOP keyword, pixel scale not a known survey's): give --from",
                )
            survey = next(iter(sources.values()))
            cut = read_cutout(job.source, survey, partial=partial)  # a broken file fails here with its own reason
            cut.warnings.append(f"source survey not in the header: taken as {survey.name}")
        else:
            survey = sources.get(cut.survey.name, cut.survey)
    name = survey.name
    if name == target.name:
        raise CutoutError(job.source.path, f"already a {name} cutout (nothing to translate to {target.name})")
    if name not in sources:
        have = ", ".join(f"{s}->{target.name}" for s in sources) or "nothing"
        raise CutoutError(
            job.source.path,
            f"the model does not translate {name}->{target.name} (it translates {have}); "
            "--model physics translates any pair of registry surveys",
        )
    return cut, survey


def read_one(job: Job, setup: Setup) -> Record:
    """Check, read and prepare one input."""
    rec = Record(job.index, "ok")
    if _existing_output(job, setup, rec):
        return rec
    try:
        cut, survey = _read_source(job, setup)
        rec.prepared = setup.translator.prepare(cut, survey)
        rec.warnings += rec.prepared.warnings
        if setup.preview:
            rec.preview = (cut.data, tuple(cut.bands), survey, cut.pixel_scale or survey.pixel_scale)
    except CutoutError as exc:
        rec.status, rec.message = "failed", str(exc)
    except S2SError as exc:
        rec.status, rec.message = "failed", f"{job.source.path}: {exc}"
    return rec


def read_chunk(jobs: list[Job], setup: Setup) -> list[Record]:
    out = []
    for job in jobs:
        try:
            out.append(read_one(job, setup))
        except Exception as exc:  # never lose a batch to one odd file
            out.append(Record(job.index, "failed", f"{job.source.path}: unexpected {type(exc).__name__}: {exc}"))
    return out


@dataclass
class _Written:
    """An output written under its temporary name: what a failure line about it needs."""

    index: int
    out_path: Path
    object_id: str
    source_file: str
    samples: int
    model_sha: str | None


#: Outputs flushed to disk together at most: each keeps a file descriptor open until then.
GROUP_FILES = 32


class _Outputs:
    """The outputs of one task: written whole, flushed to disk together, then given their names.

    Every :data:`GROUP_FILES` outputs, and at :meth:`commit`, the files written so far are
    flushed and named.  Leaving the ``with`` block without :meth:`commit` (an error, Ctrl-C
    in this process) removes the temporary files not yet named.
    """

    def __init__(self, setup: Setup):
        self.setup = setup
        self.group = AtomicGroup()
        self.written: dict[Path, _Written] = {}
        self.failed: dict[int, str] = {}

    def __enter__(self) -> _Outputs:
        return self

    def __exit__(self, *exc) -> None:
        self.group.discard()

    def wrote(self, written: _Written) -> None:
        self.written[written.out_path] = written
        if len(self.written) >= GROUP_FILES:
            self._publish()

    def _publish(self) -> None:
        errors = commit_outputs(self.group)
        self.failed.update({w.index: _failure(w, self.setup, errors[p]) for p, w in self.written.items() if p in errors})
        self.written = {}

    def commit(self) -> dict[int, str]:
        """Publish the outputs: {index: failure line (or :data:`SKIPPED`)} of those that did not get their name."""
        self._publish()
        return self.failed


def _failure(written: _Written, setup: Setup, exc: S2SError) -> str:
    """The result line of a write that failed; :data:`SKIPPED` when another run wrote the same output meanwhile."""
    if isinstance(exc, OutputExistsError):
        w = written
        if same_output(w.out_path, w.object_id, setup.seed, w.samples, w.model_sha):
            return SKIPPED
        return f"{w.source_file}: {exc.reason} ({w.out_path}, written meanwhile by another run)"
    return str(exc)


def write_one(job: WriteJob, setup: Setup, outputs: _Outputs | None = None) -> tuple[int, str | None]:
    """Finish and write one translation: (index, None) or (index, the failure line).

    With ``outputs`` the file gets its name when they are committed (:meth:`_Outputs.commit`).
    """
    from astropy.io import fits

    translator, prepared = setup.translator, job.record.prepared
    native = translator.finish(prepared, job.data)  # (S, C, H, W) native units, output grid
    if not np.isfinite(native).all():
        return job.index, f"{job.source_file}: model output is not finite (NaN/inf); nothing written to {job.out_path}"
    prov, history, cards = translator.provenance(prepared, job.object_id, setup.seed, int(job.data.shape[0]))
    prov.source_file = job.source_file
    if len(job.source_paths) > 1:
        history.append("source files: " + ", ".join(p.name for p in job.source_paths))
    history = [header_text(line) for line in history + [f"input: {w}" for w in job.record.warnings]]
    cards = [("S2SOBJ", job.object_id, "object id (with S2SSEED, the noise seed)"), *cards]
    target, wcs = translator.target, prepared.geometry.wcs
    if tuple(prepared.geometry.bands) != tuple(target.bands):  # a translator may write some bands only
        target = dataclasses.replace(target, bands=tuple(prepared.geometry.bands))
    extra = []
    for s in range(1, native.shape[0]):
        hdu = fits.ImageHDU(data=native[s], name=f"SAMPLE{s + 1}")
        if wcs is not None:
            hdu.header.extend(fits.Header.fromstring(wcs), update=True)
        hdu.header["BUNIT"] = (target.flux_unit or "unknown", "native pixel unit")
        hdu.header["BANDS"] = (",".join(prepared.geometry.bands), "band of each plane, NAXIS3 order")
        hdu.header["S2SSAMP"] = (s + 1, "noise realisation number")
        extra.append(hdu)
    written = _Written(job.index, job.out_path, job.object_id, job.source_file, int(job.data.shape[0]),
                       prov.model_sha256)
    try:
        if job.record.preview is not None:  # first: a failed preview leaves no output, a re-run redoes both
            _write_preview(job, native[0], target, setup)
        write_cutout(
            job.out_path, native[0], target, wcs=wcs, provenance=prov, history=history,
            overwrite=setup.overwrite or job.record.replace, extra_hdus=extra, mask=prepared.mask, header_cards=cards,
            group=outputs.group if outputs is not None else None,
        )
    except S2SError as exc:
        return job.index, _failure(written, setup, exc)
    if outputs is not None:
        outputs.wrote(written)
    return job.index, None


def _write_preview(job: WriteJob, out: np.ndarray, target: Survey, setup: Setup) -> None:
    """``<output>.png`` beside the output: the input and ``out`` (C, H, W) side by side per band."""
    from survey2survey.fits_io import pixel_scale_arcsec
    from survey2survey.plots import is_s2s_png
    from survey2survey.preview import write_preview

    data, bands, source, scale_in = job.record.preview
    wcs = job.record.prepared.geometry.wcs
    scale_out = target.pixel_scale
    if wcs is not None:
        from astropy.io import fits
        from astropy.wcs import WCS

        scale_out = pixel_scale_arcsec(WCS(fits.Header.fromstring(wcs)))
    path = job.out_path.with_suffix(".png")
    if path.exists() and not setup.overwrite and not is_s2s_png(path):
        raise CutoutError(job.source_file, f"{path} exists and is no s2s preview: use --overwrite to replace it "
                          "or choose another --out")
    write_preview(
        path, (data, bands, source, scale_in), (out, target.bands, target, scale_out),
        title=f"{job.object_id}: {source.name} -> {target.name}", overwrite=True,
    )


def _write_guarded(job: WriteJob, setup: Setup, outputs: _Outputs) -> tuple[int, str | None]:
    try:
        return write_one(job, setup, outputs)
    except Exception as exc:  # never lose a task to one odd output
        what = f"unexpected {type(exc).__name__} writing {job.out_path}: {first_line(exc)}"
        return job.index, f"{job.source_file}: {what}"


def write_chunk(jobs: list[WriteJob], setup: Setup) -> list[tuple[int, str | None]]:
    """Finish and write ``jobs``, their files flushed to disk together: (index, None or the failure line) each."""
    with _Outputs(setup) as outputs:
        out = [_write_guarded(job, setup, outputs) for job in jobs]
        failed = outputs.commit()
    return [(index, failed.get(index) if error is None else error) for index, error in out]


def write_job(job: Job, rec: Record, data: np.ndarray) -> WriteJob:
    """The write of ``job``'s translation ``data`` (the record's model input dropped)."""
    rec.prepared.x = None
    return WriteJob(job.index, job.out_path, job.source.object_id, str(job.source.path), list(job.source.paths), data, rec)


def translate_chunk(jobs: list[Job], setup: Setup) -> list[tuple[Record, tuple[int, str | None] | None]]:
    """Read, translate and write each job in this process (a per-cutout translator).

    Returns each input's read record and, when it was translated, its write result.  The
    outputs are flushed to disk together and named at the end (:class:`_Outputs`).
    """
    out = []
    with _Outputs(setup) as outputs:
        for job, rec in zip(jobs, read_chunk(jobs, setup)):  # read_chunk keeps the order
            if rec.status != "ok":
                out.append((rec, None))
                continue
            try:
                keys = np.array([object_seed(setup.seed, job.source.object_id)], dtype=np.int64)
                data = setup.translator.run([rec.prepared], keys, setup.samples)[0]  # (S, C, H, W)
            except Exception as exc:  # one input's failure, never the batch's
                result = (job.index, f"{job.source.path}: translation failed ({type(exc).__name__}: {first_line(exc)})")
            else:
                result = _write_guarded(write_job(job, rec, data), setup, outputs)
            # what goes back to the parent is only what it accounts (source survey, warnings): the
            # translator's state (an input header, a WCS) and the mask would cost more to pickle
            # and unpickle than the translation itself
            rec.prepared.x = rec.prepared.state = rec.prepared.mask = rec.preview = None
            out.append((rec, result))
        failed = outputs.commit()
    return [(rec, result if result is None or result[1] is not None else (result[0], failed.get(result[0])))
            for rec, result in out]
