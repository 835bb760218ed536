"""The public surface: one door in, a sorted __all__, and an error tree whose leaves are builtins too."""

from __future__ import annotations

import inspect

import vecns
from vecns import errors


def test_all_is_sorted_and_complete():
    assert vecns.__all__ == sorted(vecns.__all__)
    for name in vecns.__all__:
        assert hasattr(vecns, name), name
    public_errors = {n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, errors.VecnsError)}
    assert public_errors <= set(vecns.__all__)


def test_every_error_is_a_vecns_error_and_a_builtin():
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == errors.__name__:
            assert issubclass(cls, vecns.VecnsError), name
            if cls is not vecns.VecnsError:
                builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (object, BaseException,
                                                                                              Exception)]
                assert builtin, f"{name} subclasses no builtin"


def test_error_tree_is_drawn_in_the_docstring():
    for name, cls in vars(errors).items():
        if inspect.isclass(cls) and issubclass(cls, vecns.VecnsError) and cls is not vecns.VecnsError:
            assert name in errors.__doc__, name


def test_not_found_messages_are_unquoted():
    err = vecns.NamespaceNotFoundError("no namespace 'x'")
    assert str(err) == "no namespace 'x'"
    assert isinstance(err, KeyError)


def test_public_functions_have_docstrings():
    for cls in (vecns.Store, vecns.Namespace):
        for name, member in inspect.getmembers(cls):
            if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                assert member.__doc__, f"{cls.__name__}.{name}"
    assert vecns.connect.__doc__
