"""Checks a ``.pt2`` archive before ``torch.export`` reads any of it: a downloaded file is data, never code.

torch's own reader trusts its input. It unpickles weights and constants marked ``use_pickle``
(``torch.load(weights_only=False)``, ``pickle.loads``), unpickles the example inputs (falling back to
``weights_only=False``), loads an AOTInductor shared library under ``data/aotinductor/``, evaluates every symbolic
size (``expr_str``) with ``sympy.sympify`` (Python ``eval``) and ``exec``-s the guard code (``guards_code``)
when the program becomes a module. :func:`check_archive` refuses, with a :class:`Pt2FileError` naming the entry:

- any entry outside the layout ``tools/export_pt2.py`` writes (one root folder; ``models/<program>.json``, the
  weights and constants configs and payloads, an empty example-inputs entry, ``extra/rebnn_det.json``);
- a weight or constant stored pickled, or a constant that is not a tensor (custom / opaque objects);
- a graph node whose target is not an ``aten`` / ``prims`` / ``rebnn`` operator overload or one of the integer
  arithmetic functions of Python's ``operator`` (:data:`PYTHON_OPERATORS`), and custom objects in a graph;
- a symbolic size that is not a sympy expression tree of integers, size symbols and sympy's arithmetic, and a
  guard that is not a comparison of integer arithmetic on ``L['<input>'].size()[i]``, ``math.*`` and
  ``torch.sym_*`` — both checked on their Python syntax tree (:mod:`ast`), which is what ``eval``/``exec`` run.
"""
import ast
import json
import re
import zipfile
from typing import Iterator, List, Sequence

ALLOWED_NAMESPACES = ('aten', 'prims', 'rebnn')
# the Python functions a traced graph calls for dynamic sizes (``operator.call``, ``attrgetter`` & co. are not here)
PYTHON_OPERATORS = frozenset({'getitem', 'add', 'sub', 'mul', 'floordiv', 'truediv', 'mod', 'pow', 'neg', 'pos',
                              'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and_', 'or_', 'not_', 'abs'})
TARGET = re.compile(r'torch\.ops\.(?:%s)(?:\.(?!__)[A-Za-z_][A-Za-z0-9_]*){2}|_operator\.(?:%s)'
                    % ('|'.join(ALLOWED_NAMESPACES), '|'.join(sorted(PYTHON_OPERATORS))))

# sympy's constructors that torch's serializer writes (srepr form) and torch.utils._sympy.functions' integer maths
SYMPY_NAMES = frozenset({
    'Add', 'Mul', 'Pow', 'Integer', 'Rational', 'Float', 'Symbol', 'Max', 'Min', 'Abs', 'Eq', 'Ne', 'Lt', 'Le',
    'Gt', 'Ge', 'StrictLessThan', 'LessThan', 'StrictGreaterThan', 'GreaterThan', 'Equality', 'Unequality', 'And',
    'Or', 'Not', 'true', 'false', 'BooleanTrue', 'BooleanFalse', 'oo', 'zoo', 'nan', 'NegativeOne', 'One', 'Zero',
    'floor', 'ceiling', 'FloorDiv', 'ModularIndexing', 'Where', 'PythonMod', 'Mod', 'CleanDiv', 'CeilToInt',
    'FloorToInt', 'CeilDiv', 'LShift', 'RShift', 'PowByNatural', 'FloatPow', 'TruncToInt', 'IntTrueDiv',
    'FloatTrueDiv', 'ToFloat', 'RoundToInt', 'RoundDecimal', 'Identity', 'IsNonOverlappingAndDenseIndicator'})
SYMBOL_ASSUMPTIONS = frozenset({'positive', 'negative', 'integer', 'real', 'nonnegative', 'nonpositive', 'finite',
                                'zero', 'nonzero', 'even', 'odd', 'rational', 'commutative'})
SIZE_SYMBOL = re.compile(r'[a-z]{1,8}\d{1,9}')
IDENTIFIER = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,99}')
GUARD_TENSOR_METHODS = frozenset({'size', 'stride', 'storage_offset', 'dim', 'numel'})
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Not,
              ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BitAnd, ast.BitOr)
EXPRESSION_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Load) + ARITHMETIC


class Pt2FileError(ValueError):
    """A file that is not a loadable rebnn_det ``.pt2`` archive (the message says why)."""


def archive_root(path: str, names: Sequence[str]) -> str:
    """The one folder every entry of the archive lies in (``torch.export`` names it after the file)."""
    roots = {n.split('/', 1)[0] for n in names}
    if len(roots) != 1 or any('/' not in n for n in names):
        raise Pt2FileError(f'{path!r}: a .pt2 archive has all its entries in one root folder; found {sorted(roots)}')
    return roots.pop()


def _allowed_entry(name: str, programs: Sequence[str], meta_file: str) -> bool:
    fixed = {'archive_format', 'archive_version', 'byteorder', '.data/version', '.data/serialization_id',
             f'extra/{meta_file}'}
    if name in fixed or re.fullmatch(r'data/weights/weight_\d+|data/constants/tensor_\d+', name):
        return True
    return any(name in (f'models/{p}.json', f'data/weights/{p}_weights_config.json',
                        f'data/constants/{p}_constants_config.json', f'data/sample_inputs/{p}.pt') for p in programs)


def check_archive(path: str, programs: Sequence[str], meta_file: str) -> None:
    """Refuse ``path`` unless it holds exactly the ``programs`` (``models/<name>.json``) and nothing torch's reader
    would unpickle, load as native code, ``eval`` or ``exec`` (see the module docstring)."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith('/')]
        root = archive_root(path, names)
        entries = {n[len(root) + 1:]: n for n in names}
        for entry in entries:
            if not _allowed_entry(entry, programs, meta_file):
                raise Pt2FileError(f'{path!r}: unexpected entry {entry!r} (a rebnn_det .pt2 holds the programs '
                                   f'{list(programs)}, their weights and constants, and extra/{meta_file} only)')
        found = sorted(e[len('models/'):-len('.json')] for e in entries if e.startswith('models/'))
        if found != sorted(programs):
            raise Pt2FileError(f'{path!r} holds programs {found}; expected {sorted(programs)}')
        for program in programs:
            model = _read_json(z, path, entries, f'models/{program}.json')
            check_program_json(f'{path!r} program {program!r}', model)
            for kind in ('weights', 'constants'):
                config = _read_json(z, path, entries, f'data/{kind}/{program}_{kind}_config.json')
                _check_payload_config(path, f'{program} {kind}', config, kind)
            sample = entries.get(f'data/sample_inputs/{program}.pt')
            if sample is not None and z.getinfo(sample).file_size:
                raise Pt2FileError(f'{path!r}: data/sample_inputs/{program}.pt is not empty (a rebnn_det .pt2 '
                                   f'stores no pickled example inputs)')


def _read_json(z: zipfile.ZipFile, path: str, entries: dict, entry: str):
    if entry not in entries:
        raise Pt2FileError(f'{path!r}: missing entry {entry!r}')
    try:
        return json.loads(z.read(entries[entry]).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Pt2FileError(f'{path!r}: {entry} is not valid JSON ({e})') from e


def _check_payload_config(path: str, what: str, config, kind: str) -> None:
    prefix = 'weight_' if kind == 'weights' else 'tensor_'
    items = config.get('config') if isinstance(config, dict) else None
    if not isinstance(items, dict):
        raise Pt2FileError(f'{path!r}: the {what} config has no "config" mapping')
    for fqn, payload in items.items():
        if not isinstance(payload, dict) or payload.get('use_pickle') is not False:
            raise Pt2FileError(f'{path!r}: {what} entry {fqn!r} is stored pickled (a .pt2 loaded by rebnn_det holds '
                               f'raw tensor payloads only)')
        name = payload.get('path_name')
        if not (isinstance(name, str) and re.fullmatch(re.escape(prefix) + r'\d+', name)):
            raise Pt2FileError(f'{path!r}: {what} entry {fqn!r} points at {name!r}, not a {prefix}<n> tensor payload')


def _walk(obj, key: str = '') -> Iterator[tuple]:
    """Every ``(key, value)`` pair of a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def check_program_json(where: str, model) -> None:
    """Targets, custom objects, symbolic sizes and guards of one serialized ExportedProgram (``models/*.json``)."""
    if not isinstance(model, dict) or not isinstance(model.get('graph_module'), dict):
        raise Pt2FileError(f'{where}: not a serialized ExportedProgram (no graph_module)')
    for key, value in _walk(model['graph_module']):
        if key == 'target' and not (isinstance(value, str) and TARGET.fullmatch(value)):
            raise Pt2FileError(f'{where} calls {value!r}; a rebnn_det .pt2 calls only '
                               f'{", ".join(ALLOWED_NAMESPACES)} operators and the integer arithmetic of '
                               f"Python's operator module ({', '.join(sorted(PYTHON_OPERATORS))})")
        if key == 'custom_obj_values' and value:
            raise Pt2FileError(f'{where} holds custom objects ({sorted(value)[:3]}); a rebnn_det .pt2 holds none')
        if key == 'expr_str':
            check_sym_expr(where, value)
    inputs = _forward_arg_names(model)
    guards = model.get('guards_code') or []
    if not isinstance(guards, list):
        raise Pt2FileError(f'{where}: guards_code is not a list')
    for guard in guards:
        check_guard(where, guard, inputs)


def _forward_arg_names(model) -> List[str]:
    names = []
    for _, value in _walk(model.get('graph_module', {}).get('module_call_graph', [])):
        if isinstance(value, dict) and isinstance(value.get('forward_arg_names'), list):
            names.extend(n for n in value['forward_arg_names'] if isinstance(n, str))
    return names


def _parse(where: str, what: str, text) -> ast.Expression:
    if not isinstance(text, str) or len(text) > 100_000:
        raise Pt2FileError(f'{where}: {what} is not a string of a sane length')
    try:
        return ast.parse(text, mode='eval')
    except SyntaxError as e:
        raise Pt2FileError(f'{where}: {what} {text[:80]!r} is not an expression ({e.msg})') from e


def check_sym_expr(where: str, text) -> None:
    """``text`` is what torch's deserializer hands to ``sympy.sympify``: a tree of sympy constructors
    (:data:`SYMPY_NAMES`) over integers, floats, size symbols (``s35``) and Python arithmetic — no attribute,
    subscript, lambda, comprehension or other name."""
    tree = _parse(where, 'symbolic size', text)
    for node in ast.walk(tree):
        if isinstance(node, EXPRESSION_NODES):
            continue
        if isinstance(node, ast.Constant) and (type(node.value) in (int, float, bool) or (
                isinstance(node.value, str) and SIZE_SYMBOL.fullmatch(node.value))):
            continue
        if isinstance(node, ast.Name) and (node.id in SYMPY_NAMES or SIZE_SYMBOL.fullmatch(node.id)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SYMPY_NAMES:
            continue
        if isinstance(node, ast.keyword) and node.arg in SYMBOL_ASSUMPTIONS and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, bool):
            continue
        raise Pt2FileError(f'{where}: symbolic size {text[:120]!r} contains {ast.dump(node)[:80]}, which is not '
                           f'sympy integer arithmetic')


def check_guard(where: str, text, inputs: Sequence[str]) -> None:
    """``text`` is a line torch ``exec``-s as a shape guard: integer arithmetic and comparisons over
    ``L['<input>'].size()[i]`` (``<input>`` a forward argument name), integer constants, ``math.<function>`` and
    ``torch.sym_<function>`` calls."""
    tree = _parse(where, 'guard', text)
    allowed_inputs = {n for n in inputs if IDENTIFIER.fullmatch(n)}
    for node in ast.walk(tree):
        if isinstance(node, EXPRESSION_NODES):
            continue
        if isinstance(node, ast.Constant) and (type(node.value) in (int, float, bool) or (
                isinstance(node.value, str) and node.value in allowed_inputs)):
            continue
        if isinstance(node, ast.Name) and node.id in ('L', 'math', 'torch'):
            continue
        if isinstance(node, ast.Subscript) and _is_input_or_size(node, allowed_inputs):
            continue
        if isinstance(node, ast.Attribute) and _allowed_attribute(node):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _allowed_attribute(node.func) \
                and not node.keywords and not (node.func.attr in GUARD_TENSOR_METHODS and node.args):
            continue
        raise Pt2FileError(f'{where}: guard {text[:120]!r} contains {ast.dump(node)[:80]}, which is not a shape '
                           f'comparison')


def _is_input_or_size(node: ast.Subscript, inputs: set) -> bool:
    """``L['<input>']`` or ``<...>.size()[<int>]``."""
    if isinstance(node.value, ast.Name):
        return node.value.id == 'L' and isinstance(node.slice, ast.Constant) and node.slice.value in inputs
    return isinstance(node.value, ast.Call) and isinstance(node.slice, ast.Constant) \
        and type(node.slice.value) is int


def _allowed_attribute(node: ast.Attribute) -> bool:
    base = node.value
    if isinstance(base, ast.Name) and base.id == 'math':
        return not node.attr.startswith('_')
    if isinstance(base, ast.Name) and base.id == 'torch':
        return node.attr.startswith('sym_')
    return node.attr in GUARD_TENSOR_METHODS and isinstance(base, ast.Subscript) \
        and isinstance(base.value, ast.Name) and base.value.id == 'L'
