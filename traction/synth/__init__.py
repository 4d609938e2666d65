"""Synthetic data for tests, demos and smoke runs without real videos or model weights.

    traction.synth.trajectories   procedural labelled 2.5D trajectory clips written to a store

Submodules are imported on use (no eager imports here), so each can depend on what it needs.
"""
