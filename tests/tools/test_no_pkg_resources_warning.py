"""The environment tools/setup_env.sh installs prints no "pkg_resources is deprecated" warning: mmengine 0.10.7
imports pkg_resources whenever a config names an ``mmdet::`` base, and setuptools >= 80.9 warns there."""
import subprocess
import sys


def test_mmengine_package_check_does_not_warn():
    code = "from mmengine.utils import is_installed; assert is_installed('mmdet')"
    res = subprocess.run([sys.executable, '-W', 'error::UserWarning', '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
