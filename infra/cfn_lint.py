"""cfn-lint a CloudFormation template as it will be deployed: with each parameter at the value the deploy uses.

    python infra/cfn_lint.py .serverless/cloudformation-template-update-stack.json [--ignore-checks W3005]

serverless.yml's stack parameters carry the osls params as their defaults (the deploy passes no values), and
its VPC configuration and secrets policy hang on conditions over them. Given those values, cfn-lint evaluates
the conditions and checks the branches the deploy takes; without them it checks every branch with every
possible value, and warns that the empty security group of a stack outside any VPC is not a group id.
Exits with cfn-lint's status; arguments after the template go to cfn-lint as they are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def parameter_values(template: dict) -> list[str]:
    """``Key=Value`` for every parameter, at its default (what a deploy that passes no values gets)."""
    return [f"{key}={spec.get('Default', '')}" for key, spec in template.get("Parameters", {}).items()]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    path, rest = Path(argv[0]), argv[1:]
    values = parameter_values(json.loads(path.read_text()))
    command = [str(Path(sys.executable).parent / "cfn-lint"), str(path), *rest]
    return subprocess.run(command + (["--parameters", *values] if values else []), check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
