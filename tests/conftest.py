import pytest

from tests.tiny_detector import tiny_trained_detector  # noqa: F401  (a session fixture)


@pytest.fixture(autouse=True, scope='session')
def _mmdet_scope():
    """Components are built the way a config builds them: with mmdet as the default registry scope."""
    from mmengine.registry import init_default_scope

    import rebnn_det.plugin  # noqa: F401  registers everything
    init_default_scope('mmdet')


@pytest.fixture(autouse=True)
def _one_visualizer_per_test():
    """mmdet's configs name their visualizer 'visualizer', and mmengine keeps one instance per name per process:
    a runner of a later test would write its scalars.json into an earlier test's (deleted) work_dir. Each test
    starts with no visualizer instance, as a fresh `tools/train.py` process does."""
    from tests.helpers import clear_visualizers
    clear_visualizers()
    yield
