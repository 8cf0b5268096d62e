"""Translation by the physics of two surveys: PSF matching, resampling, units, noise.

No training: what a survey does to the sky is data in the registry (``surveys.toml``:
PSF profile and FWHM per band, sky noise or depth, pixel scale, zero point), and a cutout
of one survey becomes one of another by

1. PSF homogenisation to the target PSF where the target is broader (:mod:`.kernel`),
2. flux-conserving resampling onto the target's pixel grid, same footprint and centre
   (:mod:`.resample`),
3. unit conversion by the zero points,
4. noise: the input noise carried through 1-2 is computed analytically and topped up to
   the target's level (:mod:`.noise`).

:class:`survey2survey.physics.translator.PhysicsTranslator` does all of it; see
docs/physics.md.  Modules: :mod:`.psf` (profiles, seeing from headers), :mod:`.kernel`,
:mod:`.resample`, :mod:`.noise` (noise models: measure, save, sample), :mod:`.translator`.
This package imports nothing at import time (the survey registry imports :mod:`.psf`).
"""
