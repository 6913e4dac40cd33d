"""Importing any module of trkx_tf changes nothing: ``os.environ`` is the same before and after.

Each check runs in a child process, so that the modules are imported for the first time there. The third-party
packages that the modules import are imported before the environment is read: some of them (TensorFlow) set
variables of their own when imported, which is not trkx_tf's doing.
"""

import json
import os
import pkgutil
import subprocess
import sys

import trkx_tf

THIRD_PARTY = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} - {"trkx_tf", "__main__"})))
"""

CHILD = """
import importlib, json, os, sys
names = json.loads(sys.argv[1])
for name in names["third_party"]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = dict(os.environ)
for name in names["trkx_tf"]:
    importlib.import_module(name)
after = dict(os.environ)
print(json.dumps({"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                  "changed": sorted(k for k in before if k in after and before[k] != after[k])}))
"""


def _modules() -> list[str]:
    return ["trkx_tf"] + [info.name for info in pkgutil.walk_packages(trkx_tf.__path__, prefix="trkx_tf.")]


def _child(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL")}
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_every_module_is_found():
    assert {"trkx_tf.placement", "trkx_tf.cli.common", "trkx_tf.models.interaction",
            "trkx_tf.graphs.reader", "trkx_tf.train.checkpoints"} <= set(_modules())


def test_importing_every_module_leaves_the_environment_unchanged():
    names = _modules()
    third_party = json.loads(_child(THIRD_PARTY, *names))
    assert "tensorflow" in third_party  # the modules were imported
    diff = json.loads(_child(CHILD, json.dumps({"third_party": third_party, "trkx_tf": names})))
    assert diff == {"added": [], "removed": [], "changed": []}
