"""Package layout (everything else is in pyproject.toml).

``hpc/`` and ``benchmarks/`` stay top-level folders of the checkout, but install inside the
package as ``autophase.hpc`` and ``autophase.benchmarks``: a top-level module named ``hpc``
would collide with other packages, and the commands need both from a wheel.
"""
from setuptools import find_packages, setup

MAPPED = {"autophase.hpc": "hpc", "autophase.benchmarks": "benchmarks"}

packages = find_packages(include=["autophase", "autophase.*"])
for name, folder in MAPPED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=MAPPED)
