"""MkDocs hook: publish the repository files that docs/ pages link to outside docs/.

Pages such as docs/benchmarks.md link to result files under bench/ with relative links
(``../bench/quality/results/full/table.md``): right when the Markdown is read on GitHub or in a
clone, but outside what MkDocs builds. This hook adds every such file that exists to the site
under ``_repo/`` and rewrites the links to it, so the site is complete and ``mkdocs build
--strict`` still fails on a link whose target does not exist.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

PREFIX = "_repo"
# Markdown links and images: ](target) or ](target "title"); the target ends at a space or ')'.
_LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")


def _outside_target(page_uri: str, target: str, docs_dir: Path) -> str | None:
    """The repository-relative path of ``target`` if it leaves docs/ and exists, else None."""
    if "://" in target or target.startswith(("/", "mailto:")):
        return None
    inside = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), target))
    if not inside.startswith("../"):
        return None
    path = (docs_dir / posixpath.dirname(page_uri) / target).resolve()
    root = docs_dir.resolve().parent
    if not path.is_file() or root not in path.parents:
        return None
    return path.relative_to(root).as_posix()


def on_files(files, config):
    docs_dir = Path(config["docs_dir"])
    root = docs_dir.resolve().parent
    wanted: set[str] = set()
    for f in list(files):
        if f.is_documentation_page():
            text = Path(f.abs_src_path).read_text(encoding="utf-8")
            for _, target, _ in _LINK.findall(text):
                rel = _outside_target(f.src_uri, target, docs_dir)
                if rel is not None:
                    wanted.add(rel)
    for rel in sorted(wanted):
        files.append(File.generated(config, f"{PREFIX}/{rel}", abs_src_path=str(root / rel),
                                    inclusion=InclusionLevel.NOT_IN_NAV))
    return files


def on_page_markdown(markdown, page, config, files):
    docs_dir = Path(config["docs_dir"])
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        rel = _outside_target(page.file.src_uri, match.group(2), docs_dir)
        if rel is None:
            return match.group(0)
        new = posixpath.relpath(f"{PREFIX}/{rel}", page_dir or ".")
        return f"{match.group(1)}{new}{match.group(3)}"

    return _LINK.sub(rewrite, markdown)
