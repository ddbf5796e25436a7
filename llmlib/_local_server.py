"""``python -m llmlib._local_server ARGS``: llama-cpp-python's server
(``python -m llama_cpp.server ARGS``, https://llama-cpp-python.readthedocs.io/en/latest/server/)
with llama.cpp's "extra buffer types" (weight repacking, AMX) turned off.

Why: on CPUs with AMX and AVX-512, a llama-cpp-python built from source
(0.3.36 measured here) crashes with a general protection fault in
``libggml-cpu`` on the first prompt of more than one token when those buffer
types are on; with ``use_extra_bufts = false`` the same build answers. For the
bundled 135M model the repacked kernels buy little, so llmlib always turns them
off. This module runs only in the server's own process, never in the user's.
"""

from __future__ import annotations

import llama_cpp
import llama_cpp.llama

_default_params = llama_cpp.llama_model_default_params


def _model_params():  # type: ignore[no-untyped-def]
    params = _default_params()
    if hasattr(params, "use_extra_bufts"):
        params.use_extra_bufts = False
    return params


def main() -> None:
    """Run the server with the extra buffer types off (arguments as ``llama_cpp.server``'s)."""
    llama_cpp.llama.llama_cpp.llama_model_default_params = _model_params
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
