"""Documentation that is generated must match its source."""

from pathlib import Path

from glompo_hpc.jobfile.reference import render

ROOT = Path(__file__).resolve().parents[1]


def test_jobfile_reference_is_generated_from_the_schema():
    """docs/jobfile.md is `python -m glompo_hpc.jobfile.reference` output: regenerate it after a schema change."""
    assert (ROOT / "docs" / "jobfile.md").read_text() == render()


def test_readme_links_resolve():
    import re
    text = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def _relative_links(path):
    """Targets of the relative Markdown links and images of a file, without their #anchors."""
    import re
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", path.read_text()):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        yield target.split("#", 1)[0]


def test_docs_links_resolve():
    """Every relative link of README.md and docs/*.md names a file of the repository (as GitHub shows them)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(ROOT)}: {link}" for page in pages for link in _relative_links(page)
               if not (page.parent / link).exists()]
    assert not missing, missing


def test_mkdocs_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: fails on a broken link or anchor, a page missing from nav, or a nav entry without its page."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                          "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").exists()
