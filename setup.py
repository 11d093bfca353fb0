import pathlib

from setuptools import find_packages, setup

setup(
    name="hutch",
    version="0.3.0",
    description="An HTTP gateway to RabbitMQ: broadcast, notify and request/response over HTTP",
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["hutch", "hutch.*"]),
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        "pika>=1.3.2",
        "Paste>=3.10.1",
        "PasteDeploy>=3.1.0",
        "Beaker>=1.13.0",
        "redis>=5.0.0",
        "cryptography>=42.0",
        "WebOb>=1.8.7",
        "Mako>=1.3.0",
        "mod_wsgi>=5.0.0",
        "redis>=5.0.0",
        "prometheus-client>=0.26.0",
        "aiohttp>=3.14",
        "aio-pika>=10.2",
        "swagger-ui-py>=25.7.1",  # Swagger UI's files for GET /reference, served by the gateway
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            "WebTest>=3.0.1",
            "requests>=2.31",
            "hypothesis>=6.100",
            "selenium>=4.20",
            "ruff>=0.6",
            "openapi-spec-validator>=0.7.1",
            "schemathesis>=4.32.5,<5",
            "openapi-python-client>=0.29.1",  # tests/e2e/test_generated_client.py
            "amqp>=5.2",  # py-amqp: the seed's programs, ported (examples/seed)
            "standardwebhooks>=1.3.0",
        ],
        "bench": ["py-spy>=0.4"],
    },
    entry_points={
        "paste.app_factory": ["main = hutch.web.app:main"],
        "console_scripts": ["hutch = hutch.serve.cli:main"],
    },
)
