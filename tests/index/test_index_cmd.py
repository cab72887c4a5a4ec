"""`embedops index ...` through the real CLI (typer runner, real model, real files)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embedops.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "docs.jsonl"
    rows = [{"id": "p1", "text": "Penguins live in the southern hemisphere.", "region": "south"},
            {"id": "p2", "text": "Polar bears hunt seals on Arctic sea ice.", "region": "north"},
            {"id": "p3", "text": "Espresso is brewed by forcing hot water through coffee.", "region": "none"}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path_factory.mktemp("idx") / "col"
    result = runner.invoke(app, ["index", "build", str(path), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "documents" in result.output and "flat" in result.output
    return path, data


def test_search_info_add_delete(built, tmp_path):
    path, _ = built
    res = runner.invoke(app, ["index", "search", str(path), "arctic animals", "-k", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["id"] == "p2"
    res = runner.invoke(app, ["index", "search", str(path), "bird", "--filter", '{"region": "south"}', "--json",
                              "--mode", "hybrid"])
    assert [h["id"] for h in json.loads(res.output)] == ["p1"]
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "t1", "text": "Green tea contains less caffeine than coffee."}) + "\n")
    assert runner.invoke(app, ["index", "add", str(path), "--data", str(more)]).exit_code == 0
    res = runner.invoke(app, ["index", "delete", str(path), "p3", "zzz"])
    assert res.exit_code == 0 and "deleted 1 of 2" in res.output
    info = json.loads(runner.invoke(app, ["index", "info", str(path), "--json"]).output)
    assert info["documents"] == 3 and info["deleted"] == 1 and info["model"]["dimension"] == 384
    res = runner.invoke(app, ["index", "recommend", str(path), "-p", "t1", "-k", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)[0]["id"] != "t1"
    assert runner.invoke(app, ["index", "rebuild", str(path)]).exit_code == 0
    info = json.loads(runner.invoke(app, ["index", "info", str(path), "--json"]).output)
    assert info["deleted"] == 0 and info["epoch"] == 1


def test_errors_exit_2_with_one_line(built, tmp_path):
    path, data = built
    res = runner.invoke(app, ["index", "search", str(path), "x", "--filter", "{bad"])
    assert res.exit_code == 2 and "--filter" in res.output
    res = runner.invoke(app, ["index", "search", str(path), "x", "--filter", '{"region": {"gte": 1}}'])
    assert res.exit_code == 2 and "'region'" in res.output
    res = runner.invoke(app, ["index", "build", str(path), "--data", str(data)])
    # "not empty" from Collection.create; "collection exists" once `index build` goes through Collection.build.
    assert res.exit_code == 2 and ("not empty" in res.output or "collection exists" in res.output)
    res = runner.invoke(app, ["index", "info", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not found" in res.output
