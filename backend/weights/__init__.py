"""Weights on disk, for every model: where each file comes from (sources), how files are read
safely (Lightning checkpoints, safetensors headers), how a state dict is compared with a model,
the `download` command and the rows of the `check` report. The video model and the priors
import this package; it imports neither."""
