import pytest


@pytest.fixture(autouse=True, scope='session')
def _mmdet_scope():
    """Components are built the way a config builds them: with mmdet as the default registry scope."""
    from mmengine.registry import init_default_scope
    import rebnn_det  # noqa: F401  registers everything
    init_default_scope('mmdet')
