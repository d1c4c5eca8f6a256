"""The outputs of infra/'s CloudFormation stacks, as the next step's parameters.

    python infra/stack_outputs.py parameters infra/database.yml agent-memory-network
        -> VpcId=vpc-... PrivateSubnetIds=subnet-...,subnet-... LambdaSecurityGroupId=sg-...
           (for `aws cloudformation deploy --parameter-overrides $(...)`)
    python infra/stack_outputs.py serverless agent-memory-network agent-memory-database
        -> --param privateSubnetIds=... --param storeUrlSecretArn=arn:... ...   (for `npx osls deploy $(...)`)

One naming rule joins the three files, and tests/test_infra.py holds them to it: an output ``StoreUrlSecretArn``
feeds a template parameter of the same name, or serverless.yml's param ``storeUrlSecretArn``. Only outputs
the target takes are printed; values hold no spaces (ids, ARNs, host names), so the shell may split them.
Reads the stacks with boto3 (the AWS CLI's credentials and region: ``AWS_REGION``/``AWS_PROFILE``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVERLESS_YML = ROOT / "serverless.yml"
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}


class StackError(Exception):
    """A stack that cannot give its outputs, or two stacks that disagree: the message says which and why."""


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref X`` -> ``{"Ref": "X"}``), enough to read a template."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _tagged)


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation template (YAML with short tags) or serverless.yml, as plain data."""
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


def param_name(output_key: str) -> str:
    """serverless.yml's param for a stack output: ``StoreUrlSecretArn`` -> ``storeUrlSecretArn``."""
    return output_key[:1].lower() + output_key[1:]


def serverless_params(path: Path = SERVERLESS_YML) -> set[str]:
    """The params serverless.yml declares (``params.default``)."""
    return set(load_template(path)["params"]["default"])


def stack_outputs(stacks: list[str], client: Any) -> dict[str, str]:
    """Every output of ``stacks``, by key. A stack not deployed, not done, or two stacks giving one key two
    values raise ``StackError``."""
    from botocore.exceptions import BotoCoreError, ClientError

    outputs: dict[str, str] = {}
    for name in stacks:
        try:
            [stack] = client.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            raise StackError(f"stack {name}: {exc.response.get('Error', {}).get('Message', exc)}") from exc
        except BotoCoreError as exc:  # no credentials, no region, no network
            raise StackError(f"stack {name}: {exc}") from exc
        if stack["StackStatus"] not in DONE:
            raise StackError(f"stack {name} is {stack['StackStatus']}: wait for it to complete (or fix it) first")
        for output in stack.get("Outputs", []):
            key, value = output["OutputKey"], output["OutputValue"]
            if outputs.get(key, value) != value:
                raise StackError(f"stacks disagree on {key}: {outputs[key]!r} and {value!r} ({name})")
            outputs[key] = value
    return outputs


def for_serverless(outputs: dict[str, str], params: set[str]) -> list[str]:
    """``--param name=value`` for each output serverless.yml takes."""
    flags: list[str] = []
    for key, value in sorted(outputs.items()):
        if param_name(key) in params:
            flags += ["--param", f"{param_name(key)}={value}"]
    return flags


def for_template(outputs: dict[str, str], template: dict[str, Any]) -> list[str]:
    """``Key=Value`` for each output that is a parameter of ``template``; a parameter with no default that no
    output gives raises ``StackError`` (the deploy would stop on it anyway, later and less clearly)."""
    parameters = template.get("Parameters", {})
    missing = sorted(key for key, spec in parameters.items() if "Default" not in spec and key not in outputs)
    if missing:
        raise StackError(f"no stack given has the outputs {', '.join(missing)}: name the stack that does")
    return [f"{key}={value}" for key, value in sorted(outputs.items()) if key in parameters]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", help="the stacks' region (default: the AWS CLI's)")
    targets = parser.add_subparsers(dest="target", required=True)
    serverless = targets.add_parser("serverless", help="--param flags for `npx osls deploy`")
    serverless.add_argument("stacks", nargs="+")
    parameters = targets.add_parser("parameters", help="Key=Value pairs for a template's --parameter-overrides")
    parameters.add_argument("template", type=Path)
    parameters.add_argument("stacks", nargs="+")
    args = parser.parse_args(argv)

    import boto3

    try:
        outputs = stack_outputs(args.stacks, boto3.client("cloudformation", region_name=args.region))
        if args.target == "serverless":
            words = for_serverless(outputs, serverless_params())
        else:
            words = for_template(outputs, load_template(args.template))
    except StackError as exc:
        print(f"stack_outputs: {exc}", file=sys.stderr)
        return 1
    print(" ".join(words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
