"""The firmware C array round-trips to the same bytes and compiles."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from export import c_array


def test_round_trip(tmp_path):
  data = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
  h, cc = c_array.write(data, str(tmp_path), "hand25d_model")
  with open(cc) as f:
    text = f.read()
  assert c_array.parse_source(text) == data
  assert "alignas(16) const unsigned char g_hand25d_model[]" in text
  assert "g_hand25d_model_len = 1000;" in text
  with open(h) as f:
    assert "extern const unsigned int g_hand25d_model_len;" in f.read()


def test_tampered_length_and_bad_names():
  text = c_array.source(b"\x01\x02\x03", "m")
  with pytest.raises(ValueError, match="holds 3 bytes but declares 4"):
    c_array.parse_source(text.replace("_len = 3", "_len = 4"))
  with pytest.raises(ValueError, match="not a C identifier"):
    c_array.source(b"", "3model")


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_compiles_and_holds_the_bytes(tmp_path):
  data = bytes(range(256)) * 3
  c_array.write(data, str(tmp_path), "model")
  main = tmp_path / "main.cc"
  main.write_text('#include <cstdio>\n#include "model.h"\n'
                  'int main() { unsigned long s = 0; for (unsigned i = 0; i < g_model_len; ++i)'
                  ' s = s * 31 + g_model[i]; std::printf("%u %lu %d", g_model_len, s,'
                  ' (int)((unsigned long)g_model % 16)); }\n')
  exe = tmp_path / "a.out"
  subprocess.run(["g++", "-std=c++11", "-o", str(exe), str(main), str(tmp_path / "model.cc")],
                 check=True, cwd=tmp_path)
  out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
  expected = 0
  for b in data:
    expected = (expected * 31 + b) % 2**64
  assert out == [str(len(data)), str(expected), "0"]
