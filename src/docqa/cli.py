"""The `docqa` command: a thin layer over the library. Errors become one-line messages here."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from docqa.errors import DocqaError
from docqa.settings import MODES, PROFILES, Settings


def settings_options(fn: Callable) -> Callable:
    """The options every command shares, defined once; each maps onto a Settings field."""

    @click.option(
        "--settings",
        "settings_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="DOCQA_SETTINGS",
        help="TOML settings file [default: ./docqa.toml if present].",
    )
    @click.option(
        "--docs", "docs_dir", type=click.Path(path_type=Path), help="Documents folder [env DOCQA_DOCS; default docs/]."
    )
    @click.option(
        "--index",
        "index_dir",
        type=click.Path(path_type=Path),
        help="Index folder [env DOCQA_INDEX; default index/].",
    )
    @click.option(
        "--profile",
        type=click.Choice(PROFILES),
        help="Bundled generator: default (1.5B) or small (0.5B) [env DOCQA_PROFILE].",
    )
    @functools.wraps(fn)
    def wrapper(
        settings_file: Path | None, docs_dir: Path | None, index_dir: Path | None, profile: str | None, **kwargs: Any
    ):
        overrides = {"docs_dir": docs_dir, "index_dir": index_dir, "profile": profile}
        return fn(settings_file=settings_file, overrides=overrides, **kwargs)

    return wrapper


# Shared by `ask` and `eval`; maps onto Settings.top_k.
top_k_option = click.option("--top-k", type=int, help="Passages given to the model [env DOCQA_TOP_K].")


def load_settings(settings_file: Path | None, overrides: dict[str, Any]) -> Settings:
    return Settings.load(settings_file, **overrides)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


@click.group()
@click.version_option(package_name="docqa")
def cli() -> None:
    """Answers from a folder of documents, with citations, offline."""


@cli.command("index")
@settings_options
@click.option("--rebuild", is_flag=True, help="Re-embed everything, ignoring the existing index.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait if another indexer holds the lock.",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    metavar="[ADDRESS]",
    help="Embed through Ray Data on the cluster at ADDRESS (a local Ray when none is given).",
)
def index_cmd(
    settings_file: Path | None, overrides: dict[str, Any], rebuild: bool, wait_s: float, ray_address: str | None
) -> None:
    """Build or update the index from the documents folder (only changed files are re-embedded).

    Ctrl-C stops it; the next run resumes, re-embedding only what was not yet written.
    """
    from docqa.ingest.embeddings import embedder_from_settings
    from docqa.settings import apply_runtime_settings
    from docqa.stores import update_index

    settings = load_settings(settings_file, overrides)
    apply_runtime_settings(settings)
    bar = ProgressBar()
    try:
        embedder = embedder_from_settings(settings)
        if ray_address is not None:
            from docqa.ingest.ray import update_index_with_ray

            address = None if ray_address == "local" else ray_address
            report = update_index_with_ray(settings, embedder, address, rebuild, wait_s, bar)
        else:
            report = update_index(settings, embedder, rebuild=rebuild, lock_wait_s=wait_s, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        echo_err(f"stopped; {indexed_files(settings)} files indexed so far, run `docqa index` again to resume")
        sys.exit(130)
    bar.close()
    if report.rebuilt_because:
        echo_err(f"rebuilt: {report.rebuilt_because}")
    for problem in report.warnings:
        echo_err(f"warning: {problem.source}: {problem.reason}")
    for problem in report.failed:
        echo_err(f"not indexed: {problem.source}: {problem.reason}")
    click.echo(("index written: " if report.wrote else "index up to date: ") + report.summary())
    if report.failed:
        sys.exit(3)  # the index is usable, but some files are missing from it


def indexed_files(settings: Settings) -> int:
    """How many files the index holds now (0 when there is none, or it can't be read)."""
    from docqa.stores import open_store

    try:
        manifest = open_store(settings).read_manifest()
    except Exception:  # noqa: BLE001 - only a count for a message; the next run reports any damage
        return 0
    return len(manifest.files) if manifest else 0


class ProgressBar:
    """`docqa index`'s progress on stderr: a bar over the files, and the indexer's status after it
    (files done of total, chunks embedded, chunks/s, time left, the file being read)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, done: int, total: int, message: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            bar_format = "indexing {percentage:3.0f}%|{bar:20}| {desc}"
            self.bar = tqdm(total=total, bar_format=bar_format, file=sys.stderr, leave=False)
        self.bar.n = done
        self.bar.set_description_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@cli.command("ask")
@settings_options
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.option(
    "--batch",
    type=click.File("r", encoding="utf-8"),
    help='JSONL file of {"id", "question"} lines ("-" for stdin); writes JSONL answers.',
)
@top_k_option
def ask_cmd(
    settings_file: Path | None, overrides: dict[str, Any], question: str | None, as_json: bool, batch, top_k: int | None
) -> None:
    """Answer QUESTION from the documents, with citations."""
    from docqa.answering.pipeline import Pipeline

    if (question is None) == (batch is None):
        raise click.UsageError("give either a QUESTION or --batch FILE")
    settings = load_settings(settings_file, {**overrides, "top_k": top_k})
    pipeline = Pipeline.from_settings(settings)
    if batch is not None:
        _ask_batch(pipeline, batch)
        return
    if empty := nothing_to_search(pipeline):
        raise empty
    answer = pipeline.ask(question)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    click.echo(answer.answer)
    for c in answer.citations:
        where = c.passage.chunk.source + (f" — {c.passage.chunk.heading}" if c.passage.chunk.heading else "")
        click.echo(f"  [{c.n}] {where}: {_snippet(c.passage.chunk.text)}")
    if answer.abstained and answer.abstain_reason:
        echo_err(f"(abstained: {answer.abstain_reason})")


def nothing_to_search(pipeline: Any) -> DocqaError | None:
    """For `ask` on an empty documents folder: the error saying so, and how to add documents."""
    from docqa.answering.pipeline import NoIndexYet
    from docqa.errors import DocsError

    empty = pipeline.retriever
    if not isinstance(empty, NoIndexYet):
        return None
    return DocsError(empty.reason, f"{empty.error.fix}, then run `docqa index`")


def _ask_batch(pipeline, lines) -> None:
    """One JSON answer per input line, in order; a bad line gets an error object, not a crash."""
    empty = nothing_to_search(pipeline)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                raise ValueError('expected an object with a "question" string')
        except ValueError as exc:
            click.echo(json.dumps({"id": None, "line": number, "error": f"bad input line {number}: {exc}"}))
            continue
        try:
            if empty:
                raise empty
            answer = pipeline.ask(item["question"])
        except DocqaError as exc:
            click.echo(
                json.dumps(
                    {"id": item.get("id"), "question": item["question"], "error": exc.message}, ensure_ascii=False
                )
            )
            continue
        answer.id = item.get("id")
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False), nl=True)
        sys.stdout.flush()


def _snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command("eval")
@settings_options
@click.option(
    "--set",
    "set_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="eval/questions.jsonl",
    show_default=True,
    help="JSONL eval set.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Output folder [default eval/runs/TIME]; with --from-feedback, the JSONL file"
    " [default eval/drafts/feedback-TIME.jsonl].",
)
@top_k_option
@click.option("--retrieval", type=click.Choice(MODES), help="Retrieval mode.")
@click.option(
    "--system",
    type=click.Choice(["docqa", "naive"]),
    default="docqa",
    show_default=True,
    help="naive: the LlamaIndex starter pipeline on the same models.",
)
@click.option(
    "--compare",
    "compare_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An earlier results.json; adds a table of deltas.",
)
@click.option(
    "--fail-under",
    "fail_under",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Exit 1 if a metric misses VALUE (repeatable).",
)
@click.option("--limit", type=int, help="Only the first N questions.")
@click.option("--retrieval-only", is_flag=True, help="Score retrieval and the score gate alone, without the LLM.")
@click.option("--calibrate", is_flag=True, help="Pick min_score from the set and write it to the settings file.")
@click.option(
    "--from-feedback",
    is_flag=True,
    help="Write the web chat's thumbs-up/down answers as draft eval cases (JSONL) to review; runs nothing.",
)
def eval_cmd(
    settings_file,
    overrides,
    set_path,
    out_dir,
    top_k,
    retrieval,
    system,
    compare_path,
    fail_under,
    limit,
    retrieval_only,
    calibrate,
    from_feedback,
) -> None:
    """Measure retrieval, answers, citations, abstention and speed on an eval set."""
    from docqa.evaluate.command import run_eval_command, run_from_feedback_command

    if from_feedback:
        run_from_feedback_command(load_settings(settings_file, overrides), out_dir)
        return
    if out_dir is not None and out_dir.is_file():
        raise click.BadParameter(f"{out_dir} is a file; the results need a folder", param_hint="--out")
    if calibrate and settings_file is not None and not settings_file.exists():
        settings_file.touch()  # calibration writes its threshold here
    settings = load_settings(settings_file, {**overrides, "top_k": top_k, "retrieval": retrieval})
    failures = run_eval_command(
        settings, set_path, out_dir, system, compare_path, list(fail_under), limit, retrieval_only, calibrate
    )
    if failures:
        for failure in failures:
            echo_err(f"fail-under: {failure}")
        sys.exit(1)


@cli.command("serve")
@settings_options
@click.option("--host", help="Address to bind [default 127.0.0.1].")
@click.option("--port", type=int, help="Port [default 7860].")
@click.option(
    "--openai", "openai_api", is_flag=True, help="Serve an OpenAI-compatible API (/v1/chat/completions) instead."
)
def serve_cmd(
    settings_file: Path | None, overrides: dict[str, Any], host: str | None, port: int | None, openai_api: bool
) -> None:
    """Start the web chat (or, with --openai, an OpenAI-compatible API)."""
    settings = load_settings(settings_file, {**overrides, "host": host, "port": port})
    if openai_api:
        from docqa.serve.openai_api import serve as serve_openai

        serve_openai(settings)
        return
    from docqa.serve.web import serve

    serve(settings)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        echo_err("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DocqaError as exc:
        echo_err(f"error: {exc.message}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
