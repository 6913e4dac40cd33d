"""Safe loading: nothing in the package unpickles a file, evaluates text, or loads YAML with an unsafe loader.

The package's source is parsed (``ast``, so comments and docstrings do not count) and every import and call is
checked against the rules below.
"""

import ast
import inspect
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[2] / "trkx_tf"

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
UNSAFE_CALLS = {
    "eval": "evaluates text as code",
    "exec": "executes text as code",
    "pandas.read_pickle": "unpickles a file",
    "numpy.lib.format.read_array": "may unpickle an object array",
    "yaml.unsafe_load": "constructs arbitrary objects", "yaml.unsafe_load_all": "constructs arbitrary objects",
    "yaml.full_load": "not the safe loader", "yaml.full_load_all": "not the safe loader",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


class _Calls(ast.NodeVisitor):
    """Imports and calls of one module, names resolved through its imports (``np.load`` -> ``numpy.load``)."""

    def __init__(self):
        self.alias: dict[str, str] = {}
        self.imports: list[tuple[int, str]] = []
        self.calls: list[tuple[int, str, ast.Call]] = []

    def visit_Import(self, node):
        for a in node.names:
            self.alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            self.imports.append((node.lineno, a.name))

    def visit_ImportFrom(self, node):
        for a in node.names:
            full = f"{node.module}.{a.name}" if node.module else a.name
            self.alias[a.asname or a.name] = full
            self.imports.append((node.lineno, node.module or ""))

    def dotted(self, node) -> str:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return ""
        parts.append(self.alias.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Call(self, node):
        self.calls.append((node.lineno, self.dotted(node.func), node))
        self.generic_visit(node)


def _scan():
    for path in sorted(PACKAGE.rglob("*.py")):
        v = _Calls()
        v.visit(ast.parse(path.read_text(), str(path)))
        yield path.relative_to(PACKAGE.parent), v


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_the_package_is_scanned():
    files = list(_scan())
    assert len(files) > 30
    assert any(name == "yaml.safe_load" for _, v in files for _, name, _ in v.calls)  # the scanner sees calls


def test_no_unpickling_no_eval_no_unsafe_yaml():
    problems = []
    for path, v in _scan():
        for line, module in v.imports:
            if module.split(".")[0] in UNSAFE_MODULES:
                problems.append(f"{path}:{line}: imports {module}")
        for line, name, call in v.calls:
            if name in UNSAFE_CALLS:
                problems.append(f"{path}:{line}: {name}() {UNSAFE_CALLS[name]}")
            elif name in ("yaml.load", "yaml.load_all"):
                loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
                loader_name = v.dotted(loader).rsplit(".", 1)[-1] if loader is not None else ""
                if loader_name not in SAFE_YAML_LOADERS:
                    problems.append(f"{path}:{line}: {name}() without a safe Loader")
            elif name == "numpy.load":
                allow = _keyword(call, "allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    problems.append(f"{path}:{line}: numpy.load(allow_pickle={ast.unparse(allow)})")
            elif name.endswith("load_model") and isinstance(_keyword(call, "safe_mode"), ast.Constant) \
                    and _keyword(call, "safe_mode").value is False:
                problems.append(f"{path}:{line}: {name}(safe_mode=False)")
    assert not problems, "\n".join(problems)


def test_numpy_load_refuses_pickles_by_default():
    """A numpy.load without allow_pickle is safe only because numpy's default is False: keep it so."""
    assert inspect.signature(np.load).parameters["allow_pickle"].default is False


def test_every_numpy_load_says_allow_pickle_false():
    implicit = [f"{path}:{line}" for path, v in _scan() for line, name, call in v.calls
                if name == "numpy.load" and _keyword(call, "allow_pickle") is None]
    assert not implicit, implicit
