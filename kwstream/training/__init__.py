"""Tools to build the bundled offline English CTC model: corpus synthesis, augmentation, training, evaluation."""
