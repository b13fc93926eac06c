"""``python -m gpumarket.cli`` runs the same CLI as the ``gpumarket`` script."""

from gpumarket.cli.main import app

app()
