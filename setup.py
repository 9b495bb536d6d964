"""rebnn_det: ReBNN (Resilient Binary Neural Network, AAAI 2023) binary detectors for MMDetection 3.x."""
from setuptools import find_packages, setup

setup(
    name='rebnn_det',
    version='0.1.0',
    description='ReBNN 1-bit backbones, necks and training hook for MMDetection 3.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['rebnn_det', 'rebnn_det.*']),
    python_requires='>=3.8',
    # mmcv 2.1.0 has no wheel on PyPI: build it with ops (see README) or `mim install mmcv==2.1.0`.
    install_requires=[
        'torch>=1.13', 'mmengine>=0.10.0,<0.11', 'mmcv>=2.0.0,<2.2.0', 'mmdet>=3.0.0,<3.4', 'pycocotools',
        'numpy', 'matplotlib', 'setuptools<82',  # mmengine 0.10 imports pkg_resources at run time
    ],
    extras_require={'tests': ['pytest'], 'tensorboard': ['tensorboard']},
    license='Apache-2.0',
)
