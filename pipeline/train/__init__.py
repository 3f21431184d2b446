"""Training of super-resolution networks on a data set's train split."""
