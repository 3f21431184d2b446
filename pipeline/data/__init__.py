"""The data stage: sources fetched and locked, checkpoints fetched and checked, data sets
catalogued."""
