"""Batch files (.txt, .jsonl, .csv) are read into validated requests, or every problem with its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastrouter_async import VideoRequest
from fastrouter_async.cli._batch_file import MAX_REPORTED, BatchFileError, Problem, load_batch_file


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, default_model: str | None = "google/veo3") -> list[str]:
    with pytest.raises(BatchFileError) as caught:
        load_batch_file(path, default_model=default_model)
    return [str(problem) for problem in caught.value.problems]


def test_txt_one_prompt_per_line(tmp_path: Path) -> None:
    """A .txt file gives one request per prompt; blank lines and # comments are skipped; lines keep their numbers."""
    path = write(tmp_path, "p.txt", "# my prompts\n\na cat surfing\n   \n  a dog skiing  \n#a comment\n")
    batch = load_batch_file(path, default_model="google/veo3")
    assert [(e.line, e.request) for e in batch.entries] == [
        (3, VideoRequest(model="google/veo3", prompt="a cat surfing")),
        (5, VideoRequest(model="google/veo3", prompt="a dog skiing")),
    ]
    assert batch.extra_fields == frozenset()


def test_txt_needs_a_model(tmp_path: Path) -> None:
    """A .txt file cannot name models, so --model is required for it."""
    path = write(tmp_path, "p.txt", "a cat\n")
    assert problems_of(path, default_model=None) == [
        f"{path}: a .txt file holds only prompts: give the model with --model"
    ]


def test_jsonl_python_and_wire_names(tmp_path: Path) -> None:
    """JSONL lines take Python or wire names; a line's model wins over --model; other keys pass through."""
    path = write(
        tmp_path,
        "p.jsonl",
        '{"prompt": "a cat", "aspectRatio": "16:9", "length": 8}\n'
        "\n"
        '{"prompt": "a boat", "model": "kling-ai/kling-v1-6", "aspect_ratio": "1:1", "negativePrompt": "blurry"}\n',
    )
    batch = load_batch_file(path, default_model="google/veo3")
    assert [e.line for e in batch.entries] == [1, 3]
    assert batch.entries[0].request == VideoRequest(model="google/veo3", prompt="a cat", aspect_ratio="16:9", length=8)
    second = batch.entries[1].request
    assert (second.model, second.aspect_ratio, dict(second.extra)) == (
        "kling-ai/kling-v1-6",
        "1:1",
        {"negativePrompt": "blurry"},
    )
    assert batch.extra_fields == {"negativePrompt"}


def test_jsonl_malformed_lines_are_all_reported(tmp_path: Path) -> None:
    """Malformed JSON and non-object lines are reported with their line numbers, all of them."""
    path = write(tmp_path, "p.jsonl", '{"prompt": "ok"}\n{"prompt": "a cat",\n["a list"]\n{"prompt": "ok too"}\n')
    assert problems_of(path) == [
        f"{path}:2: malformed JSON: Expecting property name enclosed in double quotes (column 20)",
        f'{path}:3: each line must be a JSON object such as {{"prompt": "a cat surfing"}}, not a list',
    ]


def test_invalid_parameter_names_line_field_value_and_what_is_allowed(tmp_path: Path) -> None:
    """A value a model does not accept is reported as FILE:LINE: field X: value V: what is allowed."""
    path = write(
        tmp_path,
        "p.jsonl",
        '{"prompt": "a cat", "length": 8}\n'
        '{"prompt": "a cat", "length": 12}\n'
        '{"prompt": "a dog", "model": "runway/runway-gen-4-turbo"}\n'
        '{"prompt": ""}\n'
        '{"model": "google/veo3"}\n',
    )
    assert problems_of(path) == [
        f"{path}:2: field length: value 12: allowed values are 4, 6, 8 (model google/veo3)",
        f"{path}:3: field image: missing: this model is image-to-video only; "
        "pass image= as an http(s) URL of a JPG or PNG image",
        f"{path}:4: field prompt: value '': a non-empty text prompt (FastRouter requires one)",
        f"{path}:5: field prompt: missing: a non-empty string is required",
    ]


def test_missing_model_without_default(tmp_path: Path) -> None:
    """A line without a model, and no --model, says how to fix it."""
    path = write(tmp_path, "p.jsonl", '{"prompt": "a cat"}\n')
    assert problems_of(path, default_model=None) == [
        f"{path}:1: field model: missing: name a model on this line, or give --model"
    ]


def test_csv_converts_known_fields(tmp_path: Path) -> None:
    """CSV cells become ints and bools for the known fields; empty cells are left out; a BOM is ignored."""
    path = tmp_path / "p.csv"
    path.write_text(
        "\ufeffprompt,model,length,seed,generateAudio,resolution,negativePrompt\n"
        'a cat surfing,google/veo3,8,42,yes,720p,""\n'
        '"a dog, skiing",,,,,,blurry\n',
        encoding="utf-8",
    )
    batch = load_batch_file(path, default_model="google/veo3")
    assert [e.line for e in batch.entries] == [2, 3]
    assert batch.entries[0].request == VideoRequest(
        model="google/veo3", prompt="a cat surfing", length=8, seed=42, generate_audio=True, resolution="720p"
    )
    assert batch.entries[1].request == VideoRequest(
        model="google/veo3", prompt="a dog, skiing", extra={"negativePrompt": "blurry"}
    )


def test_csv_bad_values_name_line_and_field(tmp_path: Path) -> None:
    """A CSV int or bool that does not convert is reported with its line and field."""
    path = write(
        tmp_path,
        "p.csv",
        "prompt,length,generate_audio\na cat,eight,\na dog,8,maybe\na fox,8,no\n",
    )
    assert problems_of(path) == [
        f"{path}:2: field length: value 'eight': a whole number",
        f"{path}:3: field generate_audio: value 'maybe': true or false (or yes/no, 1/0)",
    ]


def test_csv_structure_problems(tmp_path: Path) -> None:
    """A header naming a column twice, or a row with more values than columns, is reported."""
    twice = write(tmp_path, "twice.csv", "prompt,prompt\na,b\n")
    assert problems_of(twice) == [f"{twice}:1: the header names column 'prompt' twice"]
    wide = write(tmp_path, "wide.csv", "prompt,length\na cat,8\na dog,8,extra\n")
    assert problems_of(wide) == [f"{wide}:3: 3 values, but the header names only 2 columns"]


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    """An unknown extension says which formats exist; a missing file says so."""
    path = write(tmp_path, "p.yaml", "- a cat\n")
    [message] = problems_of(path)
    assert message.startswith(f"{path}: unknown file type '.yaml': use .txt")
    assert problems_of(tmp_path / "nope.jsonl") == [f"{tmp_path / 'nope.jsonl'}: no such file"]


def test_empty_file_and_non_utf8(tmp_path: Path) -> None:
    """A file without requests, or not in UTF-8, is refused."""
    empty = write(tmp_path, "p.txt", "# nothing yet\n\n")
    assert problems_of(empty) == [f"{empty}: no requests found (only blank lines or comments)"]
    latin = tmp_path / "l.txt"
    latin.write_bytes(b"a cat\nun caf\xe9\n")
    [message] = problems_of(latin)
    assert message.startswith(f"{latin}:2: not UTF-8 text")


def test_report_is_capped(tmp_path: Path) -> None:
    """Every problem is collected, but the report shows the first few and counts the rest."""
    path = write(tmp_path, "p.jsonl", '{"prompt": "a cat", "length": 3}\n' * 30)
    with pytest.raises(BatchFileError) as caught:
        load_batch_file(path, default_model="google/veo3")
    assert len(caught.value.problems) == 30
    lines = caught.value.report().splitlines()
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == f"... and 10 more problems in {path}"


def test_problem_format() -> None:
    """Problems read FILE:LINE: field X: value V: message, leaving out what is unknown."""
    assert str(Problem("f.csv", 3, "a whole number", field="seed", value="'x'")) == (
        "f.csv:3: field seed: value 'x': a whole number"
    )
    assert str(Problem("f.csv", None, "no such file")) == "f.csv: no such file"
