"""Export trained networks to low-latency artifacts (design.md "export/").

Installed as ``traction.export``. ``export_classifier`` covers the trajectory classifier; the
tracker and depth networks have their own modules beside this one.
"""
from traction.export.classifier import check_onnx, export_classifier

__all__ = ["export_classifier", "check_onnx"]
