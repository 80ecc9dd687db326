"""Model families: the SAM family (official checkpoints) and the embedded lite default."""
