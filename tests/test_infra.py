"""infra/: cfn-lint on every template, and one set of names from network.yml to database.yml to serverless.yml
to the settings the functions read. infra/stack_outputs.py is run against a CloudFormation protocol server
(moto) holding stacks with the templates' outputs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memory.config import Settings, env_name
from tests.aws_support import LocalAWS, aws, aws_server  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
sys.path.insert(0, str(INFRA))
import stack_outputs  # noqa: E402 - infra/ is scripts, not a package

TEMPLATES = sorted(INFRA.glob("*.yml"))
NETWORK, DATABASE = INFRA / "network.yml", INFRA / "database.yml"
# Variables the functions read outside Settings (memory/sessions: the Upstash REST client's own names).
READ_OUTSIDE_SETTINGS = {"UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"}


def template(path: Path) -> dict[str, Any]:
    return stack_outputs.load_template(path)


SERVERLESS = template(stack_outputs.SERVERLESS_YML)


def test_the_templates_are_the_network_then_the_database() -> None:
    assert TEMPLATES == [DATABASE, NETWORK]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_network_output_is_taken_by_the_database_stack_or_serverless() -> None:
    database_parameters = template(DATABASE)["Parameters"]
    for key in template(NETWORK)["Outputs"]:
        assert key in database_parameters or stack_outputs.param_name(key) in SERVERLESS["params"]["default"], key


def test_the_database_stack_needs_nothing_the_network_stack_does_not_give() -> None:
    outputs = template(NETWORK)["Outputs"]
    required = {key for key, spec in template(DATABASE)["Parameters"].items() if "Default" not in spec}
    assert required == {"VpcId", "PrivateSubnetIds", "LambdaSecurityGroupId"}
    assert required <= set(outputs)


def test_every_database_output_is_a_serverless_param_that_the_functions_read() -> None:
    params = SERVERLESS["params"]["default"]
    text = stack_outputs.SERVERLESS_YML.read_text()
    for key in template(DATABASE)["Outputs"]:
        name = stack_outputs.param_name(key)
        assert name in params, f"serverless.yml has no param {name} for the output {key}"
        assert f"${{param:{name}}}" in text.split("\nprovider:", 1)[1], f"serverless.yml never uses {name}"


def test_each_parameter_of_the_serverless_stack_defaults_to_its_param() -> None:
    """No values are passed at deploy time (osls would pass them to its first, bucket-only stack too, which
    does not declare them): each parameter's default is the osls param of its name."""
    assert "stackParameters" not in SERVERLESS["provider"]
    declared = SERVERLESS["resources"]["Parameters"]
    for key, spec in declared.items():
        assert spec["Default"] == f"${{param:{stack_outputs.param_name(key)}}}"
        assert stack_outputs.param_name(key) in SERVERLESS["params"]["default"]
    # The functions' VPC comes from the network stack's outputs, under the same names.
    assert {"PrivateSubnetIds", "LambdaSecurityGroupId"} <= set(declared) & set(template(NETWORK)["Outputs"])


def test_every_variable_the_functions_get_is_a_setting() -> None:
    fields = {env_name(name) for name in Settings.model_fields}
    environments = [SERVERLESS["provider"]["environment"]]
    environments += [f.get("environment", {}) for f in SERVERLESS["functions"].values()]
    for environment in environments:
        for variable in environment:
            assert variable in fields | READ_OUTSIDE_SETTINGS, f"{variable} is read by nothing"
    database_env = {"databaseHost": "MEMORY_DATABASE_HOST", "databaseName": "MEMORY_DATABASE_NAME"}
    for name, variable in database_env.items():
        assert SERVERLESS["provider"]["environment"][variable] == f"${{param:{name}}}"


def test_the_database_admits_only_its_proxy_and_the_proxy_only_the_functions() -> None:
    resources = template(DATABASE)["Resources"]
    [proxy_ingress] = resources["ProxySecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert proxy_ingress["SourceSecurityGroupId"] == {"Ref": "LambdaSecurityGroupId"}
    ingress = {k: r for k, r in resources.items() if r["Type"] == "AWS::EC2::SecurityGroupIngress"}
    assert {k: (r["Condition"], r["Properties"]["SourceSecurityGroupId"]) for k, r in ingress.items()} == {
        "DatabaseIngressFromProxy": ("WithProxy", {"Ref": "ProxySecurityGroup"}),
        "DatabaseIngressFromFunctions": ("WithoutProxy", {"Ref": "LambdaSecurityGroupId"}),
    }
    assert "SecurityGroupIngress" not in resources["DatabaseSecurityGroup"]["Properties"]
    assert resources["DatabaseInstance"]["Properties"]["PubliclyAccessible"] is False
    assert resources["DatabaseProxy"]["Properties"]["RequireTLS"] is True
    cluster = resources["DatabaseCluster"]
    assert cluster["Properties"]["StorageEncrypted"] is True
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"


def test_the_credentials_are_generated_and_only_their_arns_leave_the_stack() -> None:
    database = template(DATABASE)
    secrets = {k for k, r in database["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert secrets == {"OwnerSecret", "AppLoginSecret"}
    for key in secrets:
        generated = database["Resources"][key]["Properties"]["GenerateSecretString"]
        assert generated["GenerateStringKey"] == "password"
    outputs = {key: spec["Value"] for key, spec in database["Outputs"].items()}
    assert outputs["StoreUrlSecretArn"] == {"Ref": "AppLoginSecret"}
    assert outputs["DatabaseUrlSecretArn"] == {"Ref": "OwnerSecret"}
    assert "password" not in str(outputs).lower()
    # The proxy accepts both logins; the application's is the one the functions get as the store's.
    auth = database["Resources"]["DatabaseProxy"]["Properties"]["Auth"]
    assert [a["SecretArn"] for a in auth] == [{"Ref": "OwnerSecret"}, {"Ref": "AppLoginSecret"}]


def create_stack(local: LocalAWS, name: str, outputs: dict[str, str]) -> None:
    """A stack on the local CloudFormation whose outputs carry these values (moto cannot build Aurora)."""
    import json

    body = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    local.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))


NETWORK_VALUES = {"VpcId": "vpc-0a1b", "PrivateSubnetIds": "subnet-01,subnet-02", "LambdaSecurityGroupId": "sg-0c3"}
DATABASE_VALUES = {
    "StoreUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:am/app-login-AbCdEf",
    "DatabaseUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:am/owner-GhIjKl",
    "DatabaseHost": "am.proxy-abc.us-east-1.rds.amazonaws.com",
    "DatabaseName": "agent_memory",
}


@pytest.fixture
def stacks(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> LocalAWS:  # noqa: F811 - the fixture
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", aws.url)
    assert set(NETWORK_VALUES) == set(template(NETWORK)["Outputs"])
    assert set(DATABASE_VALUES) == set(template(DATABASE)["Outputs"])
    create_stack(aws, "am-network", NETWORK_VALUES)
    create_stack(aws, "am-database", DATABASE_VALUES)
    return aws


def run_tool(*args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, str(INFRA / "stack_outputs.py"), *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def test_the_network_outputs_become_the_database_stack_s_parameters(stacks: LocalAWS) -> None:
    code, out, err = run_tool("parameters", str(DATABASE), "am-network")
    assert (code, err) == (0, "")
    assert out.split() == ["LambdaSecurityGroupId=sg-0c3", "PrivateSubnetIds=subnet-01,subnet-02", "VpcId=vpc-0a1b"]


def test_both_stacks_outputs_become_serverless_params(stacks: LocalAWS) -> None:
    code, out, err = run_tool("serverless", "am-network", "am-database")
    assert (code, err) == (0, "")
    words = out.split()
    assert words[::2] == ["--param"] * (len(words) // 2)
    given = dict(word.split("=", 1) for word in words[1::2])
    assert given == {
        "databaseHost": DATABASE_VALUES["DatabaseHost"],
        "databaseName": "agent_memory",
        "databaseUrlSecretArn": DATABASE_VALUES["DatabaseUrlSecretArn"],
        "lambdaSecurityGroupId": "sg-0c3",
        "privateSubnetIds": "subnet-01,subnet-02",
        "storeUrlSecretArn": DATABASE_VALUES["StoreUrlSecretArn"],
    }
    # Each value fits the pattern the serverless stack's own parameter of that name enforces.
    declared = SERVERLESS["resources"]["Parameters"]
    for name, value in given.items():
        key = name[0].upper() + name[1:]
        if key in declared:
            assert re.fullmatch(declared[key]["AllowedPattern"], value), (key, value)


def test_a_missing_stack_or_output_is_one_clear_line(stacks: LocalAWS) -> None:
    code, out, err = run_tool("serverless", "am-nowhere")
    assert code == 1 and out == "" and err.startswith("stack_outputs: stack am-nowhere:")
    code, out, err = run_tool("parameters", str(DATABASE), "am-database")
    assert code == 1 and "LambdaSecurityGroupId, PrivateSubnetIds, VpcId" in err and "Traceback" not in err


def test_two_stacks_disagreeing_on_an_output_are_refused(stacks: LocalAWS) -> None:
    create_stack(stacks, "am-other", {"VpcId": "vpc-ffff"})
    code, _, err = run_tool("parameters", str(DATABASE), "am-network", "am-other")
    assert code == 1 and "stacks disagree on VpcId" in err


def test_the_readme_deploy_guide_names_only_what_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    guide = readme.split("## Deploy to AWS", 1)[1].split("\n## ", 1)[0]
    params = set(SERVERLESS["params"]["default"])
    for name in re.findall(r"--param[ =]([a-zA-Z]+)=", guide):
        assert name in params, f"README passes --param {name}, which serverless.yml does not declare"
    for path in set(re.findall(r"\binfra/[\w./-]+\.(?:yml|py)\b", guide)):
        assert (ROOT / path).is_file(), path
    functions = set(SERVERLESS["functions"])
    for name in re.findall(r"osls invoke [^\n]*-f (\w+)", guide):
        assert name in functions, name
    parameters = set(template(DATABASE)["Parameters"]) | set(template(NETWORK)["Parameters"])
    for name in re.findall(r"(?<![=\w])([A-Z][a-z]+[A-Z][A-Za-z]*)=(?!=)", guide):
        assert name in parameters, f"README sets {name}, which no template in infra/ declares"


@pytest.mark.parametrize(
    "arguments", [[], ["--no-proxy", "--min-acu", "0", "--busy-acu", "0.5", "--turns", "100000", "--users", "100"]]
)
def test_the_readme_cost_tables_are_the_estimator_s_output(arguments: list[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    command = " ".join(["infra/cost_estimate.py", *arguments])
    assert f"`.venv/bin/python {command}" in readme
    done = subprocess.run(
        [sys.executable, str(INFRA / "cost_estimate.py"), *arguments], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() in readme, "rerun the command and paste its table into README.md"


def test_the_estimate_is_the_sum_of_its_lines_and_grows_with_turns() -> None:
    import cost_estimate

    from memory.config import Settings

    idle = cost_estimate.lines(cost_estimate.Assumptions(turns=0), Settings())
    busy = cost_estimate.lines(cost_estimate.Assumptions(turns=2_000_000), Settings())
    assert all(b.busy >= i.busy for i, b in zip(idle, busy, strict=True))
    proxy = {line.component: line.idle for line in idle}["RDS Proxy"]
    assert proxy == pytest.approx(8 * 0.015 * 730)  # the 8-ACU minimum, a month
    lean = cost_estimate.lines(cost_estimate.Assumptions(turns=0, proxy=False, min_acu=0), Settings())
    assert sum(line.idle for line in lean) == pytest.approx(4 * 0.40 + 0.045 * 730 + 730 * 1769 / 1024 * 0.0000166667)
