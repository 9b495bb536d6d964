"""Build the C++ runtime: ``librebnn_ops.so`` (the kernels of csrc/ as the ``torch.ops.rebnn`` operators, without
the Python module) and ``rebnn_detect`` (deploy_cpp/rebnn_detect.cpp), against the libtorch of the installed torch
with the compiler that builds the extension (g++, the same flags).

    python tools/build_cpp.py OUT_DIR        ->  OUT_DIR/librebnn_ops.so, OUT_DIR/rebnn_detect

``rebnn_detect`` links both with their run paths set, so it runs from anywhere:
``OUT_DIR/rebnn_detect MODEL.pt2 IMAGE.ppm`` (a package of ``tools/export_pt2.py --aoti``).
"""
import argparse
import glob
import os
import os.path as osp
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# setup.py's flags for the kernels (see the comments there)
KERNEL_FLAGS = ['-O3', '-fopenmp', '-ffp-contract=off', '-fno-trapping-math']


def _torch_flags():
    import torch
    from torch.utils import cpp_extension
    includes = [f'-I{p}' for p in cpp_extension.include_paths()]
    lib_dir = cpp_extension.library_paths()[0]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    compile_flags = ['-std=c++17', '-fPIC', f'-D_GLIBCXX_USE_CXX11_ABI={abi}'] + includes
    link_flags = [f'-L{lib_dir}', f'-Wl,-rpath,{lib_dir}', '-ltorch', '-ltorch_cpu', '-lc10']
    return compile_flags, link_flags


def _run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f'{shlex.join(cmd)} failed:\n{res.stderr[-4000:]}')


def build(out_dir: str, cxx: str = 'g++', jobs: int = os.cpu_count() or 1) -> dict:
    """Compile and link; returns ``{'library': path, 'program': path}``."""
    os.makedirs(out_dir, exist_ok=True)
    compile_flags, link_flags = _torch_flags()
    sources = sorted(p for p in glob.glob(osp.join(ROOT, 'csrc', '*.cpp')) if osp.basename(p) != 'python_module.cpp')
    objects = [osp.join(out_dir, osp.basename(p)[:-4] + '.o') for p in sources]
    program_src = osp.join(ROOT, 'deploy_cpp', 'rebnn_detect.cpp')
    program_obj = osp.join(out_dir, 'rebnn_detect.o')
    jobs_list = [[cxx, '-c', src, '-o', obj] + KERNEL_FLAGS + compile_flags for src, obj in zip(sources, objects)]
    jobs_list.append([cxx, '-c', program_src, '-o', program_obj, '-O2', '-ffp-contract=off'] + compile_flags)
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        list(pool.map(_run, jobs_list))
    library = osp.join(out_dir, 'librebnn_ops.so')
    _run([cxx, '-shared', '-fopenmp', '-o', library] + objects + link_flags)
    program = osp.join(out_dir, 'rebnn_detect')
    # --no-as-needed: the program calls nothing in librebnn_ops.so by name; loading it registers the operators
    _run([cxx, '-o', program, program_obj, f'-L{out_dir}', f'-Wl,-rpath,{osp.abspath(out_dir)}',
          '-Wl,--no-as-needed', '-lrebnn_ops', '-Wl,--as-needed'] + link_flags)
    return dict(library=library, program=program)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='folder for librebnn_ops.so and rebnn_detect')
    parser.add_argument('--cxx', default=os.environ.get('CXX', 'g++'), help='C++ compiler (default: $CXX or g++)')
    args = parser.parse_args(argv)
    built = build(args.out_dir, args.cxx)
    print(f"built {built['library']} and {built['program']}")


if __name__ == '__main__':
    sys.exit(main())
