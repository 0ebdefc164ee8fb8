"""Prompt templates live as Markdown files in prompts/ with strict $placeholders."""

from __future__ import annotations

from pathlib import Path
from string import Template

from docqa.errors import SettingsError

# name -> the placeholders its file must use, no more and no fewer
TEMPLATES = {
    "answer_system": set(),
    "answer_user": {"passages", "question"},
    "rewrite_system": set(),
    "rewrite_user": {"history", "question"},
}


def default_prompts_dir() -> Path:
    here = Path(__file__).resolve().parents[1]  # the docqa package folder
    for candidate in (here / "prompts", here.parents[1] / "prompts"):  # wheel, then source checkout
        if candidate.is_dir():
            return candidate
    raise SettingsError("docqa's prompts/ folder was not found", "set prompts_dir to a folder holding the prompt files")


class Prompts:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_prompts_dir()
        self.templates: dict[str, Template] = {}
        for name, wanted in TEMPLATES.items():
            path = self.folder / f"{name}.md"
            try:
                template = Template(path.read_text(encoding="utf-8").strip())
            except FileNotFoundError:
                raise SettingsError(
                    f"prompt file {path} is missing", f"restore it, or set prompts_dir to a folder with {name}.md"
                ) from None
            found = set(template.get_identifiers())
            if found != wanted or not template.is_valid():
                raise SettingsError(
                    f"prompt file {path} uses placeholders {sorted(found)}, expected {sorted(wanted)}",
                    "fix the $placeholders in the file ($$ writes a literal $)",
                )
            self.templates[name] = template

    def render(self, name: str, **values: str) -> str:
        if set(values) != TEMPLATES[name]:
            raise ValueError(f"{name} takes {sorted(TEMPLATES[name])}, got {sorted(values)}")
        return self.templates[name].substitute(values)
