"""The experiment harness, the results store, the executors, the CLI and the configs."""
