"""The config a packed file carries: stored as data, read without executing anything from the file.

A packed file may come from anywhere, so nothing in it may run code. Two things in an mmengine config can:

* the config *text* itself -- ``Config.fromstring`` executes it as Python. Format version 2 therefore stores the
  config as plain containers (``dict``/``list``/``tuple``/``str``/numbers/``None``, what
  ``torch.load(weights_only=True)`` reads), and a version-1 file's text is read by :func:`config_from_text`, a
  literal reader that accepts only what mmengine's ``pretty_text`` writes (``name = <literal>`` lines, ``dict(...)``
  with keyword arguments, lists, tuples, strings, numbers, ``True``/``False``/``None``) and never calls ``exec``;
* the component names -- mmengine's registry resolves a ``type`` it does not know as a dotted import path
  (``type='os.system'`` builds ``os.system``), a ``scope.Name`` or ``_scope_``/``default_scope`` imports the module
  ``scope.registry``, and mmcv's ``batched_nms`` evaluates ``nms.type`` with ``eval``. :func:`check_config_names`
  accepts a ``type`` only when it names a component already registered in this process (looked up in the
  registries' tables, never imported) or an mmcv NMS/RoI op, a scope only when it is already loaded, and for the
  registered components that ``eval`` an argument (:data:`EVALUATED_ARGUMENTS`) only the values they document.
  ``custom_imports`` of an embedded config is never imported (import the plugin yourself before loading).

Every reader of a packed file goes through :func:`embedded_config_data` (via
:func:`~rebnn_det.deploy.packed_file.read_packed_file`), so every path refuses the same files with the same error.
"""
import ast
from typing import Any, Dict, Iterator, Set, Tuple

# Names of ops that mmdet/mmcv look up by ``type`` outside the registries: mmcv's ``batched_nms`` evaluates
# ``nms_cfg['type']`` (``eval``), mmdet's RoI extractors take ``roi_layer['type']`` with ``getattr(mmcv.ops, ...)``.
OP_TYPES = frozenset({'nms', 'soft_nms', 'nms_rotated', 'nms_quadri', 'RoIAlign', 'RoIPool', 'RoIAlignRotated',
                      'DeformRoIPoolPack', 'ModulatedDeformRoIPoolPack', 'SimpleRoIAlign'})
# Registered components that ``eval`` one of their string arguments (mmdet 3.3.0 / mmcv 2.1.0, audited with
# ``grep eval(``): the values such an argument may take in an embedded config.
EVALUATED_ARGUMENTS = {
    'CameraMotionCompensation': {'warp_mode': ('cv2.MOTION_TRANSLATION', 'cv2.MOTION_EUCLIDEAN', 'cv2.MOTION_AFFINE',
                                               'cv2.MOTION_HOMOGRAPHY')},
}


class ConfigDataError(ValueError):
    """An embedded config that is not plain data or names something that is not a registered component."""


# ---- writing -----------------------------------------------------------------------------------------------------
def plain_data(obj):
    """``obj`` with only the types ``torch.load(weights_only=True)`` reads back: dicts (string keys), lists,
    tuples, strings, numbers, bools, ``None`` and tensors; number and string subclasses (numpy scalars, torch's
    TorchVersion) as plain values, anything else (a class, a function) as its ``repr`` -- in a config, such an
    entry is then refused on load by :func:`check_config_names` where it stands as a component ``type``."""
    import torch
    if isinstance(obj, dict):
        return {str(k): plain_data(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(plain_data(v) for v in obj)
    if isinstance(obj, list):
        return [plain_data(v) for v in obj]
    if obj is None or type(obj) in (str, int, float, bool) or isinstance(obj, torch.Tensor):
        return obj
    for kind in (bool, int, float, str):  # subclasses (numpy scalars, TorchVersion ...) as plain values
        if isinstance(obj, kind):
            return kind(obj)
    return repr(obj)


# ---- reading a version-1 file's text -----------------------------------------------------------------------------
_NUMBER = (int, float)


def config_from_text(text: str) -> dict:
    """The config written by mmengine's ``Config.pretty_text`` as a dict, read as literals (nothing is executed).

    Raises :class:`ConfigDataError` naming the line of anything that is not a literal (a call to anything but
    ``dict``, a name, an import, an attribute, an operator ...)."""
    try:
        tree = ast.parse(text, mode='exec')
    except SyntaxError as err:
        raise ConfigDataError(f'its embedded config is not valid Python syntax (line {err.lineno}: {err.msg})') \
            from err
    cfg: Dict[str, Any] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise ConfigDataError(f'its embedded config has a {type(stmt).__name__} statement at line {stmt.lineno} '
                                  '(only "name = <literal>" lines are read; nothing in a packed file is executed)')
        cfg[stmt.targets[0].id] = _literal(stmt.value)
    return cfg


def _literal(node: ast.AST):
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, bool) + _NUMBER)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, _NUMBER) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    elif isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    elif isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ConfigDataError(f'its embedded config unpacks a dict (**) at line {node.lineno} (not a literal)')
        return {_key(k): _literal(v) for k, v in zip(node.keys, node.values)}
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict'
          and not node.args and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    what = (f'a call to {ast.unparse(node.func)!r}' if isinstance(node, ast.Call)
            else f'the expression {ast.unparse(node)[:60]!r}')
    raise ConfigDataError(f'its embedded config has {what} at line {getattr(node, "lineno", "?")} (only literals '
                          'and dict(...) are read; nothing in a packed file is executed)')


def _key(node: ast.AST):
    key = _literal(node)
    if not isinstance(key, (str, int, float, bool)) and key is not None:
        raise ConfigDataError(f'its embedded config has a dict key that is not a string or number at line '
                              f'{node.lineno}')
    return key


# ---- checking what a config names --------------------------------------------------------------------------------
def _walk(obj, where: str) -> Iterator[Tuple[str, dict]]:
    """``(location, dict)`` for every dict inside ``obj`` (location like ``model.backbone.init_cfg[0]``)."""
    if isinstance(obj, dict):
        yield where, obj
        for k, v in obj.items():
            yield from _walk(v, f'{where}.{k}' if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f'{where}[{i}]')


def _registered() -> Tuple[Set[str], Dict[str, Set[str]]]:
    """The names registered in every registry loaded now (mmengine's roots and their children: mmdet, ...), and
    per scope the names of that scope. Read from the registries' tables: nothing is imported."""
    from mmengine import registry as root_module
    from mmengine.registry import Registry
    names: Set[str] = set()
    by_scope: Dict[str, Set[str]] = {}
    seen = set()
    pending = [r for r in vars(root_module).values() if isinstance(r, Registry)]
    while pending:
        reg = pending.pop()
        if id(reg) in seen:
            continue
        seen.add(id(reg))
        names.update(reg._module_dict)
        by_scope.setdefault(reg.scope, set()).update(reg._module_dict)
        pending.extend(reg._children.values())
    return names, by_scope


def check_config_names(cfg: dict) -> None:
    """Raise :class:`ConfigDataError` when ``cfg`` names anything that building it could import or evaluate: a
    ``type`` that is not a string, not registered now and not an op of :data:`OP_TYPES` (a dotted path, a
    ``scope.Name`` of a scope not loaded, an expression); a ``_scope_`` or ``default_scope`` not loaded."""
    names, by_scope = _registered()
    scope = cfg.get('default_scope')
    if scope is not None and scope not in by_scope:
        raise ConfigDataError(f'its embedded config has default_scope={scope!r}, which is not a loaded registry '
                              f'scope (loaded: {sorted(s for s in by_scope if s)})')
    for where, entry in _walk(cfg, ''):
        if '_scope_' in entry and entry['_scope_'] not in by_scope:
            raise ConfigDataError(f'its embedded config has {where}._scope_={entry["_scope_"]!r}, which is not a '
                                  f'loaded registry scope (loaded: {sorted(s for s in by_scope if s)})')
        if 'type' not in entry:
            continue
        kind = entry['type']
        if not isinstance(kind, str):
            raise ConfigDataError(f'its embedded config has {where}.type={kind!r}, not a component name')
        for argument, allowed in EVALUATED_ARGUMENTS.get(kind.rpartition('.')[2], {}).items():
            if argument in entry and entry[argument] not in allowed:
                raise ConfigDataError(f'its embedded config has {where}.{argument}={entry[argument]!r}; {kind} '
                                      f'evaluates it as Python, so a packed file may only give one of {allowed}')
        if kind in names or kind in OP_TYPES:
            continue
        prefix, _, name = kind.partition('.')
        if name and prefix in by_scope and name in by_scope[prefix]:
            continue
        raise ConfigDataError(f'its embedded config has {where}.type={kind!r}, which is not a component registered '
                              'in this process (a packed file may only name registered components; if it comes '
                              'from a plugin, import the plugin before loading the file)')


def embedded_config_data(entry, version: int) -> dict:
    """The config of a packed file of format ``version`` as a checked dict: a version-2 ``config`` entry is
    already data, a version-1 entry is mmengine's config text read by :func:`config_from_text`. Raises
    :class:`ConfigDataError` for anything else, for anything not plain data and for names
    :func:`check_config_names` refuses."""
    if version == 1:
        if not isinstance(entry, str):
            raise ConfigDataError(f'its config entry is a {type(entry).__name__}; a version-1 file stores text')
        cfg = config_from_text(entry)
    else:
        if not isinstance(entry, dict):
            raise ConfigDataError(f'its config entry is a {type(entry).__name__}; a version-{version} file stores '
                                  'the config as a dict')
        cfg = entry
    if 'model' not in cfg or not isinstance(cfg['model'], dict):
        raise ConfigDataError('its embedded config has no model dict')
    check_config_names(cfg)
    return cfg
