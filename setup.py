"""Maps the design card's short folders to namespaced import names.

protocol/ installs as `videoscene_protocol` and backend/ as `videoscene_backend`, so nothing
called bare `protocol` or `backend` lands in site-packages. pyproject.toml holds everything else;
this file only exists because a folder -> package rename with sub-packages cannot be said in TOML.
"""

from setuptools import find_packages, setup

PACKAGE_FOLDERS = {"videoscene_protocol": "protocol", "videoscene_backend": "backend"}


def _packages() -> list[str]:
    names = []
    for package, folder in PACKAGE_FOLDERS.items():
        names.append(package)
        names += [f"{package}.{sub}" for sub in find_packages(folder)]
    return names


setup(
    packages=_packages(),
    package_dir=PACKAGE_FOLDERS,
    package_data={"videoscene_backend": ["**/*.json", "**/*.txt"]},
)
