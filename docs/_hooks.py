"""mkdocs hooks: the pages link each promise to its test as ``../tests/<file>.py``
(a path that works on GitHub and in an editor). In the built site those links
point at copies of the test files, published under ``tests/``."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\(\.\./tests/(\w+\.py)((?:#\w+)?)\)")


def on_files(files, config):
    for path in sorted((ROOT / "tests").glob("*.py")):
        files.append(File(f"tests/{path.name}", str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth
    return _LINK.sub(lambda m: f"]({prefix}tests/{m.group(1)}{m.group(2)})", markdown)
