"""Pure ML for Switchboard's router (no Django): read pipeline.py top to bottom.

split → teacher (training.fit) → distil → export (ONNX int8, parity gate) → calibrate/evaluate
(+ baseline) → report (verdict, card) → artifacts (checksums; the caller publishes).
"""
