"""serverless.yml and the Lambda zip: `osls package` with no AWS credentials, cfn-lint on its CloudFormation,
the resources the issue asks for, and the zip itself run by a bare interpreter (no virtualenv) as Lambda would:
it serves, migrates, and embeds with the ONNX model it carries (vectors checked against sentence-transformers)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory import telemetry
from memory.embeddings import SentenceTransformerEmbedder
from tests.postgres_support import PostgresDatabase

ROOT = Path(__file__).resolve().parent.parent
OSLS = ROOT / "node_modules" / ".bin" / "osls"
UNZIPPED_LIMIT = 262_144_000


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The zip (infra/lambda_package.py) and `osls package` of it, with no AWS credentials anywhere."""
    if not OSLS.exists():
        pytest.fail("node_modules/.bin/osls is missing: run `npm ci` (`make test` does it)")
    folder = tmp_path_factory.mktemp("package")
    artifact = folder / "agent-memory.zip"
    run([sys.executable, str(ROOT / "infra" / "lambda_package.py"), "build", "--out", str(artifact)], cwd=ROOT)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment |= {"AWS_CONFIG_FILE": str(folder / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none")}
    template = osls_package(folder / "serverless", environment, f"packageArtifact={artifact}")
    return {
        "zip": artifact,
        "template_path": template,
        "template": json.loads(template.read_text()),
        "osls": template.parent,
    }


def osls_package(output: Path, environment: dict[str, str], *params: str) -> Path:
    """`osls package` with these params; the path of the CloudFormation template it wrote."""
    command = [str(OSLS), "package", "--package", str(output)]
    for param in params:
        command += ["--param", param]
    run(command, cwd=ROOT, env=environment)
    return output / "cloudformation-template-update-stack.json"


# What infra/stack_outputs.py passes for a stack in infra/'s VPC, with the secrets infra/database.yml makes.
IN_VPC = {
    "privateSubnetIds": "subnet-0123abcd,subnet-0456abcd",
    "lambdaSecurityGroupId": "sg-0789abcd",
    "storeUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:am/app-login-AbCdEf",
    "databaseUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:am/owner-GhIjKl",
    "databaseHost": "am.proxy-abc.us-east-1.rds.amazonaws.com",
    "databaseName": "agent_memory",
}


@pytest.fixture(scope="module")
def in_vpc(package: dict[str, Any]) -> Path:
    """The same service packaged with a VPC and two of the three secrets."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    params = [f"packageArtifact={package['zip']}", *(f"{k}={v}" for k, v in IN_VPC.items())]
    return osls_package(package["osls"].parent / "in-vpc", environment, *params)


def cfn_lint(template: Path) -> None:
    """infra/cfn_lint.py: cfn-lint with the values the deploy uses (W3005: a redundant DependsOn that the
    framework itself generates)."""
    run([sys.executable, str(ROOT / "infra" / "cfn_lint.py"), str(template), "--ignore-checks", "W3005"])


def test_cfn_lint_passes_on_the_generated_template(package: dict[str, Any], in_vpc: Path) -> None:
    cfn_lint(package["template_path"])
    cfn_lint(in_vpc)


def test_the_params_are_the_stack_parameters_defaults(package: dict[str, Any], in_vpc: Path) -> None:
    """No values at deploy time (osls would pass them to its first, bucket-only stack too): the defaults."""
    assert {key: spec["Default"] for key, spec in package["template"]["Parameters"].items()} == dict.fromkeys(
        [
            "StoreUrlSecretArn",
            "DatabaseUrlSecretArn",
            "AnthropicApiKeySecretArn",
            "UpstashTokenSecretArn",
            "PrivateSubnetIds",
            "LambdaSecurityGroupId",
            "AlarmEmail",
        ],
        "",
    )
    template = json.loads(in_vpc.read_text())
    defaults = {key: spec["Default"] for key, spec in template["Parameters"].items()}
    assert defaults["PrivateSubnetIds"] == IN_VPC["privateSubnetIds"]
    assert defaults["StoreUrlSecretArn"] == IN_VPC["storeUrlSecretArn"]
    assert defaults["AnthropicApiKeySecretArn"] == ""
    variables = template["Resources"]["ApiLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MEMORY_DATABASE_HOST"] == IN_VPC["databaseHost"]
    assert variables["MEMORY_STORE_URL_SECRET_ARN"] == IN_VPC["storeUrlSecretArn"]


def test_the_functions_and_their_events(package: dict[str, Any]) -> None:
    resources = package["template"]["Resources"]
    functions = {
        key: value["Properties"] for key, value in resources.items() if value["Type"] == "AWS::Lambda::Function"
    }
    assert {f["Handler"] for f in functions.values()} == {
        "handlers/api.handler",
        "handlers/writeback.handler",
        "handlers/migrate.handler",
        "handlers/consolidate.handler",
    }
    assert {f["Runtime"] for f in functions.values()} == {"python3.11"}
    assert {f["Environment"]["Variables"]["MEMORY_EMBEDDER"] for f in functions.values()} == {"onnx"}
    api = functions["ApiLambdaFunction"]
    assert api["Environment"]["Variables"]["MEMORY_WRITEBACK_QUEUE_URL"] == {"Ref": "WritebackQueue"}
    assert api["Timeout"] < 30  # API Gateway's HTTP API gives up at 30 s
    assert resources["HttpApiRouteDefault"]["Properties"]["RouteKey"] == "$default"  # every path to the app
    [mapping] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["WritebackQueue", "Arn"]}
    assert functions["MigrateLambdaFunction"]["Environment"]["Variables"]["MEMORY_DATABASE_URL_SECRET_ARN"] == ""
    assert functions["ConsolidateLambdaFunction"]["Timeout"] == 900
    [rule] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["ScheduleExpression"] == "rate(1 hour)"


def test_the_queue_dead_letters_and_outlasts_the_function(package: dict[str, Any]) -> None:
    resources = package["template"]["Resources"]
    queue = resources["WritebackQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WritebackDeadLetterQueue", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 2
    assert queue["VisibilityTimeout"] >= 6 * resources["WritebackLambdaFunction"]["Properties"]["Timeout"]


def test_permissions_send_receive_and_only_the_given_secrets(package: dict[str, Any]) -> None:
    resources = package["template"]["Resources"]
    statements = resources["IamRoleLambdaExecution"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    queue = {"Fn::GetAtt": ["WritebackQueue", "Arn"]}
    assert any(s["Action"] == ["sqs:SendMessage"] and s["Resource"] == queue for s in statements)
    assert any("sqs:ReceiveMessage" in s["Action"] and queue in s["Resource"] for s in statements)
    secrets = resources["SecretsReadPolicy"]
    assert secrets["Condition"] == "HasAnySecret"  # no secret given: no policy at all
    [statement] = secrets["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert [item["Fn::If"][1] for item in statement["Resource"]] == [
        {"Ref": "StoreUrlSecretArn"},
        {"Ref": "DatabaseUrlSecretArn"},
        {"Ref": "AnthropicApiKeySecretArn"},
        {"Ref": "UpstashTokenSecretArn"},
    ]


def test_every_function_runs_in_the_vpc_exactly_when_the_stack_is_given_one(package: dict[str, Any]) -> None:
    template = package["template"]
    resources = template["Resources"]
    assert template["Conditions"]["InVpc"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PrivateSubnetIds"}, ""]}]}
    functions = [key for key, value in resources.items() if value["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 4
    for key in functions:
        condition, config, otherwise = resources[key]["Properties"]["VpcConfig"]["Fn::If"]
        assert condition == "InVpc" and otherwise == {"Ref": "AWS::NoValue"}
        assert config == {
            "SubnetIds": {"Fn::Split": [",", {"Ref": "PrivateSubnetIds"}]},
            "SecurityGroupIds": [{"Ref": "LambdaSecurityGroupId"}],
        }
        variables = resources[key]["Properties"]["Environment"]["Variables"]
        assert {"MEMORY_DATABASE_HOST", "MEMORY_DATABASE_NAME"} <= set(variables)
    # Lambda needs the role to manage the functions' network interfaces, and only then.
    condition, [policy], otherwise = resources["IamRoleLambdaExecution"]["Properties"]["ManagedPolicyArns"]["Fn::If"]
    assert condition == "InVpc" and otherwise == {"Ref": "AWS::NoValue"}
    assert policy["Fn::Sub"].endswith(":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")


def agent_memory_metrics(widgets: list[dict[str, Any]]) -> set[str]:
    """The AgentMemory metric names a dashboard charts, reading CloudWatch's shorthand: "." repeats the value
    above it, "..." the row above up to the values given."""
    names: set[str] = set()
    for widget in widgets:
        previous: list[Any] = []
        for row in widget["properties"]["metrics"]:
            fields = [f for f in row if not isinstance(f, dict)]
            if fields[:1] == ["..."]:  # the row above, its last values replaced by those given
                fields = previous[: len(previous) - len(fields) + 1] + fields[1:]
            fields = [previous[i] if f == "." else f for i, f in enumerate(fields)]
            previous = fields
            if fields[0] == "AgentMemory":
                names.add(fields[1])
    return names


def test_four_alarms_write_to_one_topic_and_the_dashboard_is_json(package: dict[str, Any]) -> None:
    resources = package["template"]["Resources"]
    alarms = {key: r["Properties"] for key, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"SearchLatencyAlarm", "ExtractionFailureAlarm", "Api5xxAlarm", "DeadLetterAlarm"}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["TreatMissingData"] == "notBreaching"  # no traffic is not an incident
    service = [{"Name": "Service", "Value": "agent-memory-dev"}]
    search = alarms["SearchLatencyAlarm"]
    assert (search["Namespace"], search["MetricName"], search["ExtendedStatistic"]) == (
        "AgentMemory",
        "SearchTotalMs",
        "p95",
    )
    assert search["Dimensions"] == service
    rate = alarms["ExtractionFailureAlarm"]["Metrics"]
    assert [m["Id"] for m in rate if m["ReturnData"]] == ["rate"]
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in rate if "MetricStat" in m} == {
        "ExtractionOk",
        "ExtractionRetried",
        "ExtractionFailed",
    }
    assert all(m["MetricStat"]["Metric"]["Dimensions"] == service for m in rate if "MetricStat" in m)
    assert alarms["Api5xxAlarm"]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    dead = alarms["DeadLetterAlarm"]["Dimensions"][0]["Value"]
    assert dead == {"Fn::GetAtt": ["WritebackDeadLetterQueue", "QueueName"]}
    # The functions name the same Service as the alarms and the dashboard.
    variables = resources["ApiLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MEMORY_METRICS_SERVICE"] == "agent-memory-dev"
    body, values = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert values["Service"] == "agent-memory-dev"
    filled = re.sub(r"\$\{[A-Za-z:]+\}", "x", body)
    widgets = json.loads(filled)["widgets"]
    assert len(widgets) == 8
    assert "AlarmEmailSubscription" in resources and resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    # Every AgentMemory metric they chart or watch is one memory/telemetry.py writes, with Service its dimension.
    watched = agent_memory_metrics(widgets)
    watched |= {search["MetricName"]} | {m["MetricStat"]["Metric"]["MetricName"] for m in rate if "MetricStat" in m}
    assert watched <= set(telemetry.METRICS), watched - set(telemetry.METRICS)
    assert len(watched) == len(telemetry.METRICS), set(telemetry.METRICS) - watched  # and the dashboard shows them all


def test_the_zip_holds_the_code_and_its_dependencies_and_nothing_else(package: dict[str, Any]) -> None:
    with zipfile.ZipFile(package["zip"]) as archive:
        names = archive.namelist()
        unzipped = sum(info.file_size for info in archive.infolist())
    tops = {name.split("/", 1)[0] for name in names}
    assert {"handlers", "memory", "migrations", "fastapi", "mangum", "psycopg", "anthropic"} <= tops
    assert {"onnxruntime", "tokenizers", "numpy"} <= tops and "build/onnx/model.onnx" in names
    assert "migrations/alembic.ini" in names and "handlers/__pycache__/api.cpython-311.pyc" in names
    assert not tops & {"tests", "bench", "node_modules", ".venv", "infra", "torch", "sentence_transformers", "boto3"}
    assert not tops & {"transformers", "huggingface_hub", "hf_xet", "sympy", "google"}  # unused dependencies
    assert not [name for name in names if "/tests/" in name]  # slimmed
    assert unzipped < UNZIPPED_LIMIT


def test_each_function_s_package_is_measured_against_the_limit(package: dict[str, Any]) -> None:
    state = package["osls"] / "serverless-state.json"
    done = run([sys.executable, str(ROOT / "infra" / "lambda_package.py"), "functions", "--state", str(state)])
    sizes = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    resources = package["template"]["Resources"].items()
    functions = {key.removesuffix("LambdaFunction") for key, r in resources if r["Type"] == "AWS::Lambda::Function"}
    assert {name.capitalize() for name in sizes} == functions
    assert all(size.startswith(f"{package['zip']}, ") and "MB unzipped" in size for size in sizes.values())


def test_the_zip_alone_serves_embeds_searches_and_migrates(
    package: dict[str, Any], postgres: PostgresDatabase, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """A bare interpreter (-I -S: no virtualenv, no site-packages) with only the zip on its path, as in Lambda."""
    with zipfile.ZipFile(package["zip"]) as archive:
        archive.extractall(tmp_path / "task")
    environment = {
        "PATH": os.environ["PATH"],
        "MEMORY_STORE_URL": postgres.app_url,
        "DATABASE_URL": postgres.owner_url,
        "MEMORY_API_KEYS": f"acme:{hashlib.sha256(b'k').hexdigest()}",
        "SESSION_STORE_URL": "memory://",
    }
    command = [sys.executable, "-I", "-S", str(ROOT / "tests" / "lambda_smoke.py"), str(tmp_path / "task"), "k"]
    done = run(command, cwd=tmp_path, env=environment)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["healthz"] == [200, {"status": "ok"}]
    assert answer["readyz"] == 200 and answer["list"] == 200  # psycopg and pgvector from the zip
    assert answer["remember"][0] == 201 and answer["forget"][0] == 200
    status, body = answer["search"]
    assert status == 200 and body["hits"][0]["memory"]["content"] == "I like green tea"
    assert answer["sqlite"] == ["OnnxEmbedder", "My sister Ana lives in Lisbon"]
    assert answer["embedder"] == "build/onnx"  # the default folder, no setting needed
    texts, vectors = answer["parity"]  # the package's onnxruntime and numpy, against this venv's torch
    assert (np.array(vectors) * embedder.embed(texts)).sum(axis=1).min() >= 0.9999
    assert answer["migrate"]  # alembic and SQLAlchemy from the zip; the schema was already at head
    assert answer["missing"] == ["torch", "sentence_transformers", "transformers", "boto3"]  # boto3: the runtime's
    assert answer["site"] == []
