# Repository root on sys.path, so tests import the top-level folders (data/, benchmarks/).
