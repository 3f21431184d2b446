"""The measure stage: the metric catalogue, the metrics, and the summary of a run."""
