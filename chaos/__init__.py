"""The chaos monkey of the compose clusters (``wordcount chaos``, the wordcount/chaos image):
test tooling, beside its Dockerfile and out of the product package. ``chaos.monkey`` may
import anything of wordcount; no module of the product imports it (only ``wordcount.cli``,
lazily, to register the ``chaos`` command; tests/test_imports.py enforces it)."""
