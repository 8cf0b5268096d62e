"""One module per ``s2s`` command; each defines ``main`` (a Typer command function).

Keep module-level imports light: heavy libraries are imported inside ``main``.
"""
