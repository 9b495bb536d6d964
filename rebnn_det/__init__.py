"""rebnn_det: ReBNN binary detectors for MMDetection 3.x.

``import rebnn_det`` (and its torch-only parts: :mod:`rebnn_det.ops`, the kernels and the exported-model runtime of
:mod:`rebnn_det.deploy`) never imports mmdet, mmcv or mmengine. The mmdet plugin is :mod:`rebnn_det.plugin`:
importing it registers every component in mmdet's registries -- configs load it with
``custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)``.
"""
__version__ = '0.1.0'
