"""The packages import downward only (docs/design.md), and the runtime runs without TensorFlow.

The layers, lowest first:
  hand25d.paper, hand25d.colours        the paper's numbers, the pictures' colours
                                        (standard library only)
  hand25d.spec, hand25d.sensor          numpy only (sensor writes its JSON with
                                        hand25d.atomic, standard library only)
  hand25d.png                           image files, PNG chunks checked (numpy, Pillow)
  hand25d.metadata_schema_py_generated  the TFLite metadata schema (flatbuffers only)
  hand25d.tflite_ops                    a .tflite's operators: FLOPs, single-operator models
  hand25d.litert                        LiteRT and TFLM interpreters, TFLite metadata
  hand25d.litert_timing                 interleaved invoke times of LiteRT interpreters
  hand25d.op_profile                    per-operator LiteRT times
  hand25d.decoding, hand25d.mirror,     numpy post-processing
  runtime.lifting, runtime.smoothing
  hand25d.runtime (without demo)        the deployable runtime
  everything else in hand25d            data engine, model, training, demo
  export                                above hand25d: nothing in hand25d imports it
Imports are read with `ast` from the sources (those inside functions too,
tests/source_imports.py), so a forbidden import fails here before it slows or
breaks a deployment. Inside `bazel test` the sandbox holds only this test's
declared inputs: the import checks run under pytest (make test); Bazel itself
keeps //hand25d off //export and the demo by `visibility`.
"""

import os
import subprocess
import sys

import pytest

import source_imports

HAND25D = source_imports.HAND25D
ROOT = source_imports.ROOT

# TensorFlow and what comes with it: the training side's.
TRAINING_THIRD_PARTY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")
_LOW = ("hand25d", "hand25d.paper", "hand25d.spec", "hand25d.sensor")
_POST = _LOW + ("hand25d.decoding", "hand25d.mirror")
# Module (or package prefix, ending in ".") -> the hand25d/export modules it may import.
ALLOWED = {
    "hand25d.paper": ("hand25d",),
    "hand25d.colours": ("hand25d",),
    "hand25d.spec": ("hand25d", "hand25d.paper"),
    "hand25d.atomic": ("hand25d",),
    "hand25d.png": (),
    "hand25d.sensor": _LOW + ("hand25d.atomic",),
    "hand25d.metadata_schema_py_generated": (),
    "hand25d.litert": ("hand25d", "hand25d.metadata_schema_py_generated"),
    "hand25d.tflite_ops": (),
    "hand25d.litert_timing": ("hand25d", "hand25d.litert"),
    "hand25d.op_profile": ("hand25d", "hand25d.litert", "hand25d.litert_timing",
                           "hand25d.tflite_ops"),
    "hand25d.decoding": _LOW,
    "hand25d.mirror": _LOW,
    "hand25d.runtime.lifting": _POST + ("hand25d.runtime",),
    "hand25d.runtime.smoothing": _POST + ("hand25d.runtime",),
}
RUNTIME_CORE_ALLOWED = _POST + ("hand25d.atomic", "hand25d.litert", "hand25d.png",
                                 "hand25d.pretrained")
# Runtime modules that may import Pillow themselves: none. The 16-bit PNG
# recordings are read through hand25d.png, which imports Pillow only when a
# file is read.
PILLOW_ALLOWED = ()


@source_imports.SOURCE_TREE
def test_sources_are_found():
  for module in list(ALLOWED) + ["hand25d.runtime.pipeline", "hand25d.runtime.demo.runner"]:
    assert module in HAND25D, module
  assert "export.exporter" in source_imports.EXPORT


@source_imports.SOURCE_TREE
@pytest.mark.parametrize("module", ["hand25d.paper", "hand25d.colours"])
def test_the_lowest_modules_import_nothing(module):
  assert not HAND25D[module], sorted(HAND25D[module])


@source_imports.SOURCE_TREE
def test_nothing_in_hand25d_imports_export():
  bad = {m: sorted(i for i in imports if i.split(".")[0] == "export")
         for m, imports in HAND25D.items()}
  assert not {m: i for m, i in bad.items() if i}, (
      "export sits above hand25d (docs/design.md); move the code into hand25d")


@source_imports.SOURCE_TREE
@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_low_layers_import_only_lower_layers(module):
  imports = HAND25D[module]
  own = source_imports.ours(imports)
  assert own <= set(ALLOWED[module]), sorted(own - set(ALLOWED[module]))
  assert not {m for m in imports if m.split(".")[0] in TRAINING_THIRD_PARTY}


@source_imports.SOURCE_TREE
def test_runtime_core_imports_no_training_side():
  core = {m: imports for m, imports in HAND25D.items() if source_imports.is_runtime_core(m)}
  assert "hand25d.runtime.pipeline" in core and "hand25d.runtime.demo.runner" not in core
  for module, imports in core.items():
    own = {m for m in source_imports.ours(imports) if not source_imports.is_runtime_core(m)}
    assert own <= set(RUNTIME_CORE_ALLOWED), (module, sorted(own - set(RUNTIME_CORE_ALLOWED)))
    forbidden = TRAINING_THIRD_PARTY + ("matplotlib",) + (
        () if module in PILLOW_ALLOWED else ("PIL",))
    third_party = {m for m in imports if m.split(".")[0] in forbidden}
    assert not third_party, (module, sorted(third_party))


def test_runtime_runs_a_frame_without_tensorflow(tmp_path):
  """In a fresh process, the shipped float32 model runs a frame in both backends.

  Then neither TensorFlow nor any training-side or export module is loaded.
  """
  code = """
import sys
import numpy as np
from hand25d import pretrained
from hand25d import sensor
from hand25d import spec
from hand25d.runtime import pipeline

rng = np.random.default_rng(0)
shape = (spec.NUM_PHASE_FRAMES, spec.SENSOR.height, spec.SENSOR.width)
frames = rng.integers(100, 3000, shape).astype(np.uint16)
for backend in ("litert", "tflm"):
  options = pipeline.PipelineOptions(backend=backend, presence_threshold=0.0,
                                     min_keypoint_confidence=0.0)
  with pipeline.Pipeline(pretrained.path(pretrained.FLOAT32), options=options) as p:
    result = p.process(frames)
  assert result.ok, result.error
  assert not result.early_out and result.hands[0].keypoints_2d.shape == (spec.NUM_PRIMARY_KEYPOINTS, 2)
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("tensorflow", "tf_keras", "keras", "export")
                or m.startswith(("hand25d.data", "hand25d.model", "hand25d.training",
                                 "hand25d.runtime.demo")))
print("LOADED", loaded)
"""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "LOADED []" in result.stdout, result.stdout
