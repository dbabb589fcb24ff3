"""The experiment harness, the results store, the executors and the configs (the ``pipecert``
command line is the top-level :mod:`cli` package)."""
