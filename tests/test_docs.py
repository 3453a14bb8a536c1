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
