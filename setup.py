"""Installs the recommender: the pipeline, its components, the trainer and the model server."""

from setuptools import find_packages, setup

setup(
    name="tfx-recsys",
    version="0.1.0",
    description="A production recommender on TensorFlow Extended: pipeline, compression, serving.",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["core*", "ingest*", "trainer*", "evaluation*", "compression*", "components*",
                                    "pipeline*", "serving*", "online*", "kubeflow*", "cli*"]),
    package_data={"pipeline": ["schema/*.pbtxt"], "kubeflow": ["manifests/*.yaml", "Dockerfile"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-recommenders==0.7.7",
        "tensorflow-model-optimization==0.8.1",
        "tensorflow-serving-api==2.16.1",
        "apache-beam==2.74.0",
        "dill",
        "grpcio",
        "matplotlib",
        "kfp==2.5.0",
        "scipy==1.12.0",
    ],
    extras_require={
        # ScaNN's custom ops: the ScaNN retrieval-index variant of the serving model (trainer.scann_serving_model)
        # and the project's model server serving it. Built for TF 2.16; numpy and tensorflow are pinned above.
        "ann": ["scann==1.3.2"],
        "dev": ["pytest", "pytest-timeout", "pytest-xdist", "hypothesis", "ruff", "scann==1.3.2"],
    },
    entry_points={"console_scripts": ["recsys=cli.main:main"]},
)
