"""The pipeline image installs the project as a package, with the development pins.

No Docker daemon runs in the test environment, so these tests read the Dockerfile and check
that it agrees with setup.py, the installed Beam and Python, and the Kubeflow config.
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "kubeflow" / "Dockerfile").read_text()


def _arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M)
    assert match, f"ARG {name} missing"
    return match.group(1)


def test_copies_every_package_and_installs_it_with_the_pins():
    setup = (ROOT / "setup.py").read_text()
    include = re.search(r'include=\[([^\]]*)\]', setup).group(1)
    packages = [p.strip().strip('"').rstrip("*") for p in include.split(",")]
    copied = re.findall(r"^COPY (\w+)/ \1/$", DOCKERFILE, re.M)
    assert sorted(copied) == sorted(packages)
    assert re.search(r"^COPY setup.py constraints.txt \./$", DOCKERFILE, re.M)
    assert "pip install -c constraints.txt .[${RECSYS_EXTRAS}]" in DOCKERFILE


def test_the_default_extras_exist_in_setup_and_include_scann():
    setup = (ROOT / "setup.py").read_text()
    extras = _arg("RECSYS_EXTRAS").split(",")
    assert "ann" in extras
    for extra in extras:
        assert re.search(rf'"{extra}": \[', setup), f"setup.py has no extra {extra!r}"


def test_versions_match_the_development_environment():
    import apache_beam

    assert _arg("BEAM_VERSION") == apache_beam.__version__
    assert _arg("PYTHON_VERSION") == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_image_layout_matches_the_kubeflow_config():
    from kubeflow.config import KubeflowConfig

    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M).group(1)
    assert workdir == KubeflowConfig().image_project_root
    # Beam workers start through the SDK boot program; KFP gives the component command itself.
    assert re.search(r'^ENTRYPOINT \["/opt/apache/beam/boot"\]$', DOCKERFILE, re.M)
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in DOCKERFILE
