"""The exception tree survives the wire: every error class in the package, wherever it is
defined, registers its own code and comes back from its error body as the same class, and none
is named like an exception of SQLAlchemy or httpx (which the same modules import)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy.exc

import gpumarket
from gpumarket import errors
from gpumarket.errors import (
    ContractReverted,
    GpumarketError,
    InternalServerError,
    InvalidRequest,
    NotFound,
    Unreachable,
    error_from_response,
)

PACKAGE = Path(gpumarket.__file__).parent

SAMPLES: dict[type[GpumarketError], Callable[[], GpumarketError]] = {
    ContractReverted: lambda: ContractReverted("NotOpen", (7, "0xabc"), raw="0xdeadbeef"),
}
"""How to build the classes whose constructor is not ``(message, details=...)``."""


def _defining_modules() -> list[str]:
    """The modules of the package that define a subclass of an error class, found in their
    source (so a module that no test imports is not missed, and an unrelated module that
    does not import is not needed): the class names grow until no module adds one."""
    trees = {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts): ast.parse(
            path.read_text()
        )
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    names = {"GpumarketError"}
    modules: set[str] = set()
    while True:
        before = len(names), len(modules)
        for module, tree in trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and _base_names(node) & names:
                    names.add(node.name)
                    modules.add(module.removesuffix(".__init__"))
        if (len(names), len(modules)) == before:
            return sorted(modules)


def _base_names(node: ast.ClassDef) -> set[str]:
    return {
        b.id if isinstance(b, ast.Name) else b.attr
        for b in node.bases
        if isinstance(b, ast.Name | ast.Attribute)
    }


def _subclasses(cls: type[GpumarketError]) -> Iterator[type[GpumarketError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _package_errors() -> list[type[GpumarketError]]:
    for module in _defining_modules():
        importlib.import_module(module)
    found = {c for c in _subclasses(GpumarketError) if c.__module__.startswith("gpumarket.")}
    return sorted([GpumarketError, *found], key=lambda c: f"{c.__module__}.{c.__qualname__}")


ALL_ERRORS = _package_errors()


def test_the_census_finds_the_classes_defined_outside_errors_py() -> None:
    names = {c.__name__ for c in ALL_ERRORS}
    assert {"DockerUnavailable", "Unreachable", "InternalServerError"} <= names


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_comes_back_from_its_body_as_itself(cls: type[GpumarketError]) -> None:
    sample = SAMPLES.get(cls, lambda: cls("what went wrong", details={"field": "x"}))()
    assert errors.ERRORS_BY_CODE[cls.code] is cls, f"{cls.__name__} must declare its own code"
    rebuilt = error_from_response(sample.status_code, sample.to_dict())
    assert type(rebuilt) is cls
    assert rebuilt.to_dict() == sample.to_dict()
    assert rebuilt.message == sample.message and str(rebuilt) == str(sample)
    assert rebuilt.status_code == sample.status_code


def test_a_reverts_decoded_error_comes_back() -> None:
    sample = ContractReverted("StakeTooLow", (5, 10))
    rebuilt = error_from_response(409, sample.to_dict())
    assert isinstance(rebuilt, ContractReverted)
    assert rebuilt.error == "StakeTooLow" and rebuilt.args_ == ("5", "10")


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_no_error_is_named_like_an_httpx_or_sqlalchemy_exception(
    cls: type[GpumarketError],
) -> None:
    assert cls.__name__ not in set(dir(httpx)) | set(dir(sqlalchemy.exc))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"detail": "internal error in the coordinator", "code": "internal"}, "internal"),
        (500, None, "internal"),  # the framework's or a proxy's bare 500
        (502, {"detail": "Bad Gateway"}, "transport_error"),
        (503, None, "transport_error"),
        (504, {"detail": "x", "code": "no_such_code"}, "transport_error"),
        (404, {"detail": "x", "code": "no_such_code"}, "not_found"),  # a newer server's code
        (422, {"detail": "x"}, "invalid_request"),
        (418, {"detail": "x"}, "error"),
    ],
)
def test_an_unknown_code_falls_back_by_status(status: int, body: object, expected: str) -> None:
    assert error_from_response(status, body).code == expected


def test_a_500_is_not_an_outage_worth_repeating() -> None:
    rebuilt = error_from_response(500, {"detail": "boom", "code": "internal"})
    assert isinstance(rebuilt, InternalServerError) and not isinstance(rebuilt, Unreachable)


def test_a_class_registers_itself_and_a_taken_code_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(errors, "ERRORS_BY_CODE", dict(errors.ERRORS_BY_CODE))

    class Teapot(GpumarketError):
        code = "teapot"
        status_code = 418

    assert error_from_response(418, {"detail": "short and stout", "code": "teapot"}).__class__ is (
        Teapot
    )

    class SpecialNotFound(NotFound):  # no code of its own: comes back as NotFound
        pass

    assert errors.ERRORS_BY_CODE["not_found"] is NotFound
    with pytest.raises(TypeError, match="already has"):

        class Clash(InvalidRequest):
            code = "not_found"
