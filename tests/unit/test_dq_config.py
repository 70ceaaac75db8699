"""The declarative checks file: the shipped one is valid, malformed ones are refused with a clear message."""

import pytest

from pipeline import config
from pipeline.tasks import quality


def test_the_shipped_checks_are_valid_and_cover_every_type():
    checks = quality.load_checks(config.PROJECT_ROOT / "conf" / "dq_checks.toml")
    assert {c["type"] for c in checks} == set(quality.CHECK_FIELDS)
    assert {c["severity"] for c in checks} == {"error", "warn"}


@pytest.mark.parametrize("text, message", [
    ('[[check]]\nname = "a"\ntype = "unique"\ntable = "t"\nseverity = "error"\n', "a unique check needs columns"),
    ('[[check]]\nname = "a"\ntype = "freshnes"\ntable = "t"\nseverity = "error"\n', "unknown type 'freshnes'"),
    ('[[check]]\nname = "a"\ntype = "batch_accounting"\ntable = "t"\nseverity = "fatal"\n',
     "severity must be error or warn, not 'fatal'"),
    ('[[check]]\nname = "a"\ntype = "batch_accounting"\ntable = "t"\n', "has no 'severity'"),
    ('[[check]]\nname = "a"\ntype = "batch_accounting"\ntable = "t"\nseverity = "warn"\nscope = "week"\n',
     "scope must be date or table"),
    ('[[check]]\nname = "a"\ntype = "batch_accounting"\ntable = "t"\nseverity = "warn"\n' * 2,
     "the name is used twice"),
    ('[[check]\nname = "a"', "cannot read data-quality checks"),
])
def test_malformed_checks_are_refused(tmp_path, text, message):
    path = tmp_path / "checks.toml"
    path.write_text(text)
    with pytest.raises(quality.InvalidCheck, match=message):
        quality.load_checks(path)
