"""One module per figure or table of the paper, each reading the results store."""
