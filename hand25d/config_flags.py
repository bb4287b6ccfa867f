"""absl flags built from the fields of a config dataclass, for the `*_main` binaries.

A binary turns its flags into a frozen config dataclass and hands that to a
library. `define(config, field, help)` defines the flag that fills one field
with the field's type and, as its default, the value `config` holds (a
dataclass instance) or the field's default (a dataclass class; a field
without one gives a required flag), so a flag cannot drift from the field it
fills. Libraries take the dataclass and never import this module.

    _EPOCHS = config_flags.define(plan.Budget(), "epochs", "Epochs per row.")
    _OUT = config_flags.define(export_config.ExportConfig, "out_dir", "Output directory.",
                               name="out")

Field types and the flags they give: bool, int, float, str (an enum with
`choices`), Optional[str], Optional[int], tuple[str, ...] (a comma-separated
list).
"""

import dataclasses
import typing
from typing import Any, Optional, Sequence

from absl import flags

# The flags `define` defines belong to the binary that calls it (its key
# flags, as --helpshort lists them), not to this module.
flags.disclaim_key_flags()

_DEFINE = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
    Optional[str]: flags.DEFINE_string,
    Optional[int]: flags.DEFINE_integer,
    tuple[str, ...]: flags.DEFINE_list,
}


def define(config: Any, field: str, help: str, *,  # pylint: disable=redefined-builtin
           name: Optional[str] = None, choices: Optional[Sequence[str]] = None,
           flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagHolder:
  """Defines the flag --`name` (default: `field`) that fills `config.field`.

  Args:
    config: a dataclass instance (its value of the field is the default) or
      a dataclass (the field's default; none makes the flag required).
    field: the field the flag fills.
    help: the flag's help text.
    name: the flag's name, if not the field's.
    choices: the values a str field may take (an enum flag).
    flag_values: where to define it (absl's global FLAGS by default).

  Returns:
    The flag's holder; `.value` is the parsed value (a list for a tuple field).

  Raises:
    TypeError: `config` is not a dataclass, has no such field, or the field's
      type has no flag type (or `choices` are given for a field that is not a
      str).
  """
  cls = config if isinstance(config, type) else type(config)
  if not dataclasses.is_dataclass(cls):
    raise TypeError(f"{cls.__name__} is not a dataclass")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  if field not in fields:
    raise TypeError(f"{cls.__name__} has no field {field!r}; fields: {', '.join(fields)}")
  kind = typing.get_type_hints(cls)[field]
  if kind not in _DEFINE or (choices is not None and kind is not str):
    raise TypeError(f"{cls.__name__}.{field} is {kind}: no flag for it"
                    + (" with choices" if choices is not None else ""))
  required = False
  if config is cls:
    spec = fields[field]
    if spec.default is not dataclasses.MISSING:
      default = spec.default
    elif spec.default_factory is not dataclasses.MISSING:
      default = spec.default_factory()
    else:
      default, required = None, True
  else:
    default = getattr(config, field)
  if kind == tuple[str, ...] and default is not None:
    default = list(default)
  name = name or field
  if choices is not None:
    return flags.DEFINE_enum(name, default, list(choices), help, flag_values=flag_values,
                             required=required)
  return _DEFINE[kind](name, default, help, flag_values=flag_values, required=required)
