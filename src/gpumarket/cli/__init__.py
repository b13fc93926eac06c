"""The ``gpumarket`` command line."""
