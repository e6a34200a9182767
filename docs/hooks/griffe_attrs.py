"""Griffe extension: an attrs class gets the ``__init__`` that attrs generates for it.

Griffe reads source, where an attrs class has no ``__init__``: without this, its
signature would be empty and an ``Args:`` section documenting its fields would be
reported as naming parameters that do not exist. The parameters are those of the
runtime class (names, keyword-only flags, converter-widened types, defaults).
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import griffe

_logger = griffe.get_logger("griffe_attrs")


def _default(field: attrs.Attribute[Any] | None, parameter: inspect.Parameter) -> str | None:
    if parameter.default is inspect.Parameter.empty:
        return None
    if field is not None and isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return "<factory>"
    return repr(parameter.default)


def _annotation(parameter: inspect.Parameter) -> str | None:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return None
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


class AttrsInit(griffe.Extension):
    """Adds the generated ``__init__`` to every attrs class that does not define one."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if "__init__" in cls.members:
            return
        try:
            runtime = griffe.dynamic_import(cls.path)
        except ImportError:
            _logger.warning(f"griffe_attrs: cannot import {cls.path}")
            return
        if not (isinstance(runtime, type) and attrs.has(runtime)):
            return
        fields = {field.alias: field for field in attrs.fields(runtime)}
        signature = inspect.signature(runtime.__init__)
        parameters = griffe.Parameters(
            *(
                griffe.Parameter(
                    name,
                    annotation=_annotation(parameter),
                    kind=griffe.ParameterKind(parameter.kind.description),
                    default=_default(fields.get(name), parameter),
                )
                for name, parameter in signature.parameters.items()
                if name != "self"
            )
        )
        init = griffe.Function("__init__", parameters=parameters, parent=cls)
        cls.set_member("__init__", init)
