"""The README's architecture table is the tree's, and modules import only from their layer and the ones before."""

import pytest

from pipeline import config
from pipeline.runtime import architecture

ROOT = config.PROJECT_ROOT


def test_the_readme_shows_the_table_generated_from_the_tree():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(architecture.START), readme.index(architecture.END) + len(architecture.END)
    assert readme[start:end] == architecture.section(ROOT), "run `python -m pipeline architecture --write`"


def test_every_module_has_a_layer_and_says_what_it_holds():
    found = architecture.rows(ROOT)
    paths = {path for _, path, _ in found}
    assert {"pipeline/io/warehouse.py", "pipeline/tasks/ready.py", "dashboard/views/overview.py",
            "pipeline/engine/class_archive_trainer.py"} <= paths
    assert all(text and "\n" not in text for _, _, text in found)


def test_no_module_imports_from_a_later_layer():
    assert architecture.upward_imports(ROOT) == []


def test_no_modules_import_each_other():
    assert architecture.import_cycles(ROOT) == []


def test_an_import_cycle_through_a_function_level_import_is_found(tmp_path):
    tasks = tmp_path / "pipeline" / "tasks"
    tasks.mkdir(parents=True)
    (tmp_path / "dashboard").mkdir()
    (tasks / "a.py").write_text('"""A."""\n\nfrom pipeline.tasks import b\n')
    (tasks / "b.py").write_text('"""B."""\n\n\ndef f():\n    from pipeline.tasks.c import C\n')
    (tasks / "c.py").write_text('"""C."""\n\nimport pipeline.tasks.a\n')
    (tasks / "d.py").write_text('"""D, outside the cycle."""\n\nfrom pipeline.tasks import a\n')
    assert architecture.import_cycles(tmp_path) == [["pipeline/tasks/a.py", "pipeline/tasks/b.py",
                                                     "pipeline/tasks/c.py"]]


def test_a_later_layer_import_is_found_even_inside_a_function(tmp_path):
    (tmp_path / "pipeline" / "transforms").mkdir(parents=True)
    (tmp_path / "pipeline" / "tasks").mkdir()
    (tmp_path / "dashboard").mkdir()
    (tmp_path / "pipeline" / "tasks" / "t.py").write_text('"""A task."""\n')
    (tmp_path / "pipeline" / "transforms" / "x.py").write_text(
        '"""A transform. More text."""\n\n\ndef f():\n    from pipeline.tasks import t\n')
    assert architecture.rows(tmp_path) == [("pure transforms", "pipeline/transforms/x.py", "A transform."),
                                           ("Luigi tasks", "pipeline/tasks/t.py", "A task.")]
    assert architecture.upward_imports(tmp_path) == ["pipeline/transforms/x.py -> pipeline/tasks/t.py"]


@pytest.mark.parametrize(("path", "text", "message"), [
    ("pipeline/elsewhere/y.py", '"""Somewhere."""\n', "in no layer"),
    ("pipeline/io/z.py", "x = 1\n", "no docstring"),
])
def test_a_module_without_a_layer_or_a_docstring_is_named(tmp_path, path, text, message):
    (tmp_path / "dashboard").mkdir()
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(text)
    with pytest.raises(architecture.UnplacedModule, match=message):
        architecture.rows(tmp_path)
