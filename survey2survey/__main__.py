"""``python -m survey2survey`` is ``s2s``."""

from survey2survey.cli import main

main()
