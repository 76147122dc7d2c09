"""Building blocks of the federated models: a fixed-point secret-sharing ring, Paillier helpers for the
protocols (masking, packed matrix products), optimizers and the logistic-regression protocols themselves."""
