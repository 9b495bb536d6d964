"""rebnn_det: ReBNN (Resilient Binary Neural Network, AAAI 2023) binary detectors for MMDetection 3.x.

Builds the optional C++ extension ``rebnn_det._C`` (XNOR-popcount kernels, csrc/) with torch's cpp_extension. The
build is optional: without torch at build time, on a failed compile, or with ``REBNN_BUILD_EXT=0`` the package
installs without it and runs binary convolutions on the pure-PyTorch path (it warns once when first used).
No -march flag: the AVX2/AVX-512 kernels carry per-function target attributes and are chosen at run time.
"""
import glob
import os

from setuptools import find_packages, setup


def extension_kwargs() -> dict:
    if os.environ.get('REBNN_BUILD_EXT', '1') == '0':
        print('[rebnn_det] REBNN_BUILD_EXT=0: not building the rebnn_det._C kernels')
        return {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except Exception as e:  # noqa: BLE001  any import problem means: no extension
        print(f'[rebnn_det] torch is not importable at build time ({e}); not building the rebnn_det._C kernels')
        return {}

    class OptionalBuildExtension(BuildExtension):
        """Build the kernels if the compiler can; otherwise install the pure-Python package and say why."""

        def run(self):
            try:
                super().run()
            except Exception as e:  # noqa: BLE001  a failed compile must not fail the install
                print(f'[rebnn_det] WARNING: building rebnn_det._C failed ({e}); the package installs without the '
                      'XNOR-popcount kernels and uses the pure-PyTorch path')
                self.extensions = []

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, 'csrc', '*.cpp')))
    ext = CppExtension(
        'rebnn_det._C', sources,
        # OpenMP: at::parallel_for is an inline OpenMP loop; it links torch's already-loaded libgomp.so.1
        # -ffp-contract=off: no multiply-add fused behind the source's back -- the epilogue rounds each step like
        # the torch op it mirrors (its one fused step is an explicit std::fma), so deploy is bit-identical.
        # -fno-trapping-math (no FP exceptions are observed; values and rounding unchanged) lets g++ vectorize the
        # epilogue's RPReLU select with a blend on AVX2/SSE (it stays a scalar branch otherwise)
        extra_compile_args={'cxx': ['-O3', '-fopenmp', '-ffp-contract=off', '-fno-trapping-math']},
        extra_link_args=['-fopenmp'])
    return dict(ext_modules=[ext], cmdclass={'build_ext': OptionalBuildExtension.with_options(use_ninja=True)})


setup(
    name='rebnn_det',
    version='0.1.0',
    description='ReBNN 1-bit backbones, necks and training hook for MMDetection 3.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['rebnn_det', 'rebnn_det.*']),
    python_requires='>=3.10',
    # mmcv 2.1.0 has no wheel on PyPI: build it with ops (see README) or `mim install mmcv==2.1.0`.
    install_requires=[
        'torch>=2.6', 'mmengine>=0.10.0,<0.11', 'mmcv>=2.0.0,<2.2.0', 'mmdet>=3.0.0,<3.4', 'pycocotools',
        # mmengine 0.10 imports pkg_resources (setuptools >= 80.9 warns about it on every import)
        'numpy', 'matplotlib', 'setuptools<80.9',
    ],
    extras_require={'tests': ['pytest'], 'tensorboard': ['tensorboard']},
    license='Apache-2.0',
    **extension_kwargs(),
)
