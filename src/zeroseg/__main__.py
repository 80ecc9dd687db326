"""``python -m zeroseg``: the zeroseg command line."""
from zeroseg.cli import app

app(prog_name="zeroseg")
