from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="fastpolicy",
    version="0.1.0",
    description="Learned, per-sample augmentation policies (Adversarial AutoAugment, AWS) on DALI and CuPy",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[*find_packages(include=["fastpolicy", "fastpolicy.*"]), "fastpolicy.kernels"],
    # The CUDA sources ship inside the package (fastpolicy/kernels/) in wheels.
    package_dir={"fastpolicy.kernels": "kernels"},
    package_data={"fastpolicy.kernels": ["*.cu", "*.cuh", "*.hpp", "*.cpp", "README.md"]},
    install_requires=[
        "numpy>=1.24",
        # from the oldest pair the tests have passed on (2.14.1 / 0.29.1) up to the next major
        "torch>=2.14.1,<3",
        "torchvision>=0.29.1,<1",
        "tqdm>=4.60",
        "pillow>=10",  # file checks (verify="decode"); torchvision needs it anyway
        "pyyaml>=6",  # --config files and each run's config.yaml
        "tfrecord>=1.14",  # TFRecord shards: the converter's writer and Example parser (with crc32c)
        "scipy>=1.15",  # the studies' statistics: t intervals, exact sign-flip tests, bootstrap (reproduce/stats.py)
    ],
    entry_points={"console_scripts": ["fastpolicy=fastpolicy.cli:main"]},
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-benchmark>=4",
            "pillow>=13",  # the oracle: Pillow 13's ImageOps.equalize divides by 255
            "scikit-image>=0.22",
            "scikit-learn>=1.3",
            "matplotlib>=3.7",
            "tensorboard>=2.14",
            "timm>=1.0",  # the peer that tests/test_timm_strings.py checks timm's policy strings against
            "ruff==0.17.6",  # lint and format (pyproject.toml), run by CI and pre-commit
            "mypy==2.4.1",
            "types-PyYAML",
            "pre-commit>=4",
        ],
        "bench": ["kornia>=0.7"],  # an optional peer of `fastpolicy bench`
        "cuda13": ["nvidia-dali-cuda130>=2.0", "cupy-cuda13x>=13"],
        "cuda12": ["nvidia-dali-cuda120>=2.0", "cupy-cuda12x>=13"],
    },
)
