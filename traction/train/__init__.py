"""Training, evaluation protocols and plots."""
