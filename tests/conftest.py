import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests run models under PyTorch unless they test the ONNX Runtime path itself (tests/test_runtime.py):
# an export per tiny model file would cost seconds and write into the user's cache.
os.environ.setdefault("XRAY_RUNTIME", "pytorch")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
