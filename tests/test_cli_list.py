"""``pipecert list`` shows every registered method and format."""

import json

from cli import main
from formulations import FORMULATIONS
from heuristics import HEURISTICS


def test_list_json_contains_every_registered_method(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["kind"], r["name"]) for r in rows}
    assert {("bound", n) for n in FORMULATIONS.names()} <= names
    assert {("heuristic", n) for n in HEURISTICS.names()} <= names
    assert any(r["kind"] == "format" and r["name"] == "native" for r in rows)


def test_list_text_output(capsys):
    assert main(["list", "bounds"]) == 0
    out = capsys.readouterr().out
    assert "combinatorial" in out and "max(W/k" in out
