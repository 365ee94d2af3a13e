"""hqdm.registry: the one error every registry raises for a name it does not hold."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

import hqdm.models
from hqdm.cli import EXIT_USER_ERROR, main
from hqdm.diffusion import make_noise_source, make_sampler, make_schedule
from hqdm.models import build_model
from hqdm.precision import resolve_precision
from hqdm.registry import UnknownNameError, lookup


def test_lookup_returns_the_registered_value() -> None:
    table = {"ddpm": 1, "ddim": 2}
    assert lookup(table, "ddim", "sampler") == 2


def test_unknown_name_names_the_kind_and_every_registered_name_in_order() -> None:
    with pytest.raises(UnknownNameError) as caught:
        lookup({"cosine": 1, "linear": 2}, "tailored", "noise schedule")
    error = caught.value
    assert str(error) == "unknown noise schedule 'tailored'; choose one of cosine, linear"
    assert (error.kind, error.name, error.known) == ("noise schedule", "tailored", ("cosine", "linear"))


def test_unknown_name_is_a_lookup_error_but_not_a_key_error() -> None:
    """Callers catch LookupError (or UnknownNameError); unlike KeyError, the message is not quoted."""
    with pytest.raises(LookupError) as caught:
        lookup({"unet": 1}, "x", "model")
    assert not isinstance(caught.value, KeyError)
    assert str(caught.value) == "unknown model 'x'; choose one of unet"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no KeyError chained


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (partial(build_model, "nope"), "model"),
        (partial(make_sampler, "nope", make_schedule("cosine", 10)), "sampler"),
        (partial(make_schedule, "nope"), "noise schedule"),
        (partial(make_noise_source, "nope"), "noise source"),
        (partial(resolve_precision, "nope", "cpu"), "precision"),
    ],
)
def test_every_registry_raises_it(build: Callable[[], object], kind: str) -> None:
    with pytest.raises(UnknownNameError, match=f"^unknown {kind} 'nope'; choose one of "):
        build()


def test_the_command_line_reports_it_as_a_one_line_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unknown(**_: object) -> str:
        return lookup({"unet": 1}, "vunet", "model")

    monkeypatch.setattr(hqdm.models, "format_model_table", unknown)
    assert main(["models"]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert captured.err == "hqdm: error: UnknownNameError: unknown model 'vunet'; choose one of unet\n"
