"""Reading infra/template.yaml: CloudFormation short-form tags and intrinsics.

The template is the one definition of sendtrail's resources. The deploy path
hands it to `chalice package --merge-template`; the local runtime and the
tests read it here, resolve its intrinsic functions against a stage's
parameters and the physical ids of what was created, and export the same
environment variables a Lambda function gets from the Globals section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

TEMPLATE_PATH = Path(__file__).with_name("template.yaml")

_SHORT_FORM_TAGS = {
    "!Ref": "Ref",
    "!Sub": "Fn::Sub",
    "!GetAtt": "Fn::GetAtt",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!FindInMap": "Fn::FindInMap",
    "!Base64": "Fn::Base64",
    "!Condition": "Condition",
    "!ImportValue": "Fn::ImportValue",
    "!GetAZs": "Fn::GetAZs",
}


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into `{"Ref": "X"}` and so on."""


def _construct_intrinsic(function_name: str) -> Callable[[yaml.Loader, yaml.Node], Any]:
    def construct(loader: yaml.Loader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if function_name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {function_name: value}

    return construct


for _tag, _function in _SHORT_FORM_TAGS.items():
    _TemplateLoader.add_constructor(_tag, _construct_intrinsic(_function))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsics in their long form."""
    with open(path, encoding="utf-8") as handle:
        # S506/B506 (yaml.load): _TemplateLoader is a SafeLoader subclass.
        return yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506  # nosec B506


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Each declared parameter's value: the override when given, else its default."""
    values = {}
    for name, declaration in template.get("Parameters", {}).items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in declaration:
            values[name] = str(declaration["Default"])
        else:
            raise KeyError(f"template parameter {name} has no default and no value was given")
    unknown = set(overrides) - set(values)
    if unknown:
        raise KeyError(f"unknown template parameters: {sorted(unknown)}")
    return values


def evaluate_conditions(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, bool]:
    """Each of the template's Conditions, true or false for these parameter values."""
    declared = template.get("Conditions", {})
    evaluated: dict[str, bool] = {}

    def evaluate(expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            (function, argument), = expression.items()
            if function == "Ref":
                return values[argument]
            if function == "Condition":
                return condition(argument)
            if function == "Fn::Equals":
                left, right = (evaluate(item) for item in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not evaluate(argument[0])
            if function == "Fn::And":
                return all(evaluate(item) for item in argument)
            if function == "Fn::Or":
                return any(evaluate(item) for item in argument)
            raise NotImplementedError(f"condition function {function}")
        return expression

    def condition(name: str) -> bool:
        if name not in evaluated:
            evaluated[name] = bool(evaluate(declared[name]))
        return evaluated[name]

    return {name: condition(name) for name in declared}


# What Ref AWS::NoValue resolves to: the property it is the value of is removed.
NO_VALUE = object()


class IntrinsicResolver:
    """Resolves Ref / Fn::Sub / Fn::GetAtt / Fn::Join / Fn::If against known values.

    `refs` maps a parameter or logical resource id to what `Ref` returns;
    `attributes` maps (logical id, attribute) to what `Fn::GetAtt` returns;
    `conditions` maps a condition's name to its value (Fn::If resolves only
    the branch it takes, so a branch may name a resource its condition left
    out). A property whose value is `Ref AWS::NoValue` is dropped.
    """

    _SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")

    def __init__(
        self,
        refs: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str] | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        conditions: Mapping[str, bool] | None = None,
    ) -> None:
        self.refs = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "sendtrail",
            "AWS::NoValue": NO_VALUE,
            **refs,
        }
        self.attributes = dict(attributes or {})
        self.conditions = dict(conditions or {})

    def resolve(self, value: Any) -> Any:
        return self._walk(value, everything=True)

    def choose_branches(self, value: Any) -> Any:
        """`value` with each Fn::If replaced by the branch its condition takes and `Ref AWS::NoValue` dropped
        (from lists too); every other intrinsic left as it is, for moto's CloudFormation to resolve (it keeps a
        None in a list for AWS::NoValue, e.g. for an index a condition leaves out)."""
        return self._walk(value, everything=False)

    def _walk(self, value: Any, everything: bool) -> Any:
        if isinstance(value, list):
            return [item for item in (self._walk(item, everything) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Fn::If":
                name, when_true, when_false = argument
                if name not in self.conditions:
                    raise KeyError(f"cannot resolve Fn::If on unknown condition {name}")
                return self._walk(when_true if self.conditions[name] else when_false, everything)
            if key == "Ref" and (everything or argument == "AWS::NoValue"):
                return self._ref(argument)
            if everything and key == "Fn::Sub":
                return self._sub(argument)
            if everything and key == "Fn::GetAtt":
                return self._get_att(argument)
            if everything and key == "Fn::Join":
                separator, items = argument
                return separator.join(str(self.resolve(item)) for item in self.resolve(items))
        walked = {key: self._walk(item, everything) for key, item in value.items()}
        return {key: item for key, item in walked.items() if item is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name not in self.refs:
            raise KeyError(f"cannot resolve Ref {name}")
        return self.refs[name]

    def _get_att(self, argument: list[str]) -> str:
        logical_id, attribute = argument
        key = (logical_id, attribute)
        if key not in self.attributes:
            raise KeyError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute}")
        return self.attributes[key]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            local = {name: self.resolve(expr) for name, expr in variables.items()}
        else:
            text, local = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return self._SUB_VARIABLE.sub(replace, text)


def function_environment(template: Mapping[str, Any], resolver: IntrinsicResolver) -> dict[str, str]:
    """The environment every Lambda function gets (Globals.Function.Environment)."""
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(resolver.resolve(value)) for name, value in variables.items()}
