"""`[[variants]]`: one entry is the variant model of the method it names, as the plug-ins declare them
(bench.plugins), so each method's options are its own; an unknown method or another method's option is refused
in one line that says which method would take it."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter

from bench import plugins
from bench.errors import did_you_mean
from bench.plugins.variant import VariantBase


def registered_method(name: str) -> str:
    if name not in plugins.methods():
        raise ValueError(did_you_mean(name, list(plugins.methods()), "method"))
    return name


def _variant_union():
    """One `[[variants]]` entry: the variant model of the method it names (default dense), so each method's
    options are its own and a typo is answered with that method's fields."""
    specs = plugins.methods()
    members = tuple(Annotated[spec.variant, Tag(name)] for name, spec in specs.items())
    return Annotated[Union[members], Discriminator(_method_of), BeforeValidator(_known_options)]  # noqa: UP007


def _method_of(value: Any) -> str:
    return value.get("method", "dense") if isinstance(value, dict) else getattr(value, "method", "dense")


def _known_options(value: Any) -> Any:
    """Refuse an unknown method, or an option of another method, in one line that says which would take it."""
    if not isinstance(value, dict):
        return value
    name, method = value.get("name", "?"), _method_of(value)
    specs = plugins.methods()
    if method not in specs:
        raise ValueError(f"variant '{name}': " + did_you_mean(str(method), list(specs), "method"))
    own = specs[method].variant.model_fields
    for key in value:
        if key in own:
            continue
        takers = [m for m, spec in specs.items() if key in spec.variant.model_fields]
        if takers:
            raise ValueError(f"variant '{name}': {key} applies to method{'s' if len(takers) > 1 else ''} "
                             f"{', '.join(takers)}, not '{method}'")
        raise ValueError(f"variant '{name}' (method '{method}'): " + did_you_mean(str(key), list(own), "option"))
    return value


VariantConfig = _variant_union()
_VARIANT = TypeAdapter(VariantConfig)


def make_variant(**fields: Any) -> VariantBase:
    """A variant from its fields, validated as a `[[variants]]` entry is: make_variant(name="p16", method="prompt",
    prompt_length=16)."""
    return _VARIANT.validate_python(fields)
