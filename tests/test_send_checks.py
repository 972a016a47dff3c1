"""A send is refused exactly when Python would refuse the call, whatever the signature.

Sends check arguments with a shortcut for the common signatures and ``Signature.bind``
for the rest; this compares both with Python's own answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from conftest import count_jobs

from sqlqueue import SQLQueue, TaskArgumentsError


def plain(a: int, b: int = 2) -> None: ...
def plain_bound(self: Any, a: int, b: int = 2) -> None: ...
def only_positional(a: int, /, b: int = 2) -> None: ...
def only_positional_bound(self: Any, a: int, /, b: int = 2) -> None: ...
def star_args(a: int, *rest: int) -> None: ...
def star_args_bound(self: Any, a: int, *rest: int) -> None: ...
def keyword_only(a: int, *, b: int) -> None: ...
def keyword_only_bound(self: Any, a: int, *, b: int) -> None: ...
def star_kwargs(a: int, **options: Any) -> None: ...
def star_kwargs_bound(self: Any, a: int, **options: Any) -> None: ...


FUNCTIONS = [
    (plain, plain_bound),
    (only_positional, only_positional_bound),
    (star_args, star_args_bound),
    (keyword_only, keyword_only_bound),
    (star_kwargs, star_kwargs_bound),
]

CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((), {"a": 1}),
    ((1,), {"b": 2}),
    ((), {"a": 1, "b": 2}),
    ((1,), {"a": 1}),
    ((1,), {"c": 3}),
]


def python_accepts(fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fun).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("bind", [False, True])
@pytest.mark.parametrize(("fun", "fun_bound"), FUNCTIONS)
@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_a_send_is_refused_exactly_when_the_call_would_fail(
    app: SQLQueue,
    fun: Callable[..., Any],
    fun_bound: Callable[..., Any],
    bind: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    task = app.task(name="t.checked", bind=bind)(fun_bound if bind else fun)
    single_shape = not (args and kwargs)  # what one delay_many call can say
    if python_accepts(fun, args, kwargs):
        task.apply_async(args, kwargs)
        if single_shape:
            task.delay_many([args or kwargs])
        assert count_jobs(app) == (2 if single_shape else 1)
    else:
        with pytest.raises(TaskArgumentsError, match="cannot take these arguments"):
            task.apply_async(args, kwargs)
        if single_shape:
            with pytest.raises(TaskArgumentsError, match="cannot take these arguments"):
                task.delay_many([args or kwargs])
        assert count_jobs(app) == 0
