"""
Writes the EKS token test vector: what `aws eks get-token` (awscli, signing with its botocore)
prints for fixed credentials, region, cluster name and clock. The unit test
test/unit/eks-token.test.ts must produce exactly the same bytes.

Run through scripts/eks-token-vector.ts, which installs the pinned awscli into a venv in the
cache outside the repository:  npx tsx scripts/eks-token-vector.ts
Only the clock is replaced (the functions awscli and its botocore read the time from); the
signing, the URL, the encoding and the printed JSON are awscli's own.
"""
import contextlib
import datetime
import io
import json
import os
import sys

CASES = [
    {
        "name": "long-term keys, us-east-1",
        "clusterName": "prod",
        "region": "us-east-1",
        "now": "2026-11-23T01:02:03Z",
        "credentials": {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
    },
    {
        "name": "session credentials (a Lambda role), eu-west-1",
        "clusterName": "platform-eu-1",
        "region": "eu-west-1",
        "now": "2026-02-28T23:59:59Z",
        "credentials": {
            "accessKeyId": "ASIAEXAMPLE0000EXAMPLE",
            "secretAccessKey": "Sup3r/Secret+Key==ExampleOnly0123456789ab",
            "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+example/token+with=padding==",
        },
    },
    {
        "name": "China partition, cn-north-1",
        "clusterName": "cn",
        "region": "cn-north-1",
        "now": "2027-01-01T00:00:00Z",
        "credentials": {"accessKeyId": "AKIDCHINAEXAMPLE", "secretAccessKey": "cnSecretExampleKey/0123456789+abcdefghijk"},
    },
]


def run_case(case):
    import awscli.botocore.auth
    import botocore.auth  # the same file, loaded a second time under the name awscli registers for it
    import awscli.customizations.eks.get_token as get_token
    from awscli.clidriver import create_clidriver

    frozen = datetime.datetime.strptime(case["now"], "%Y-%m-%dT%H:%M:%SZ")

    def now(remove_tzinfo=True):
        return frozen if remove_tzinfo else frozen.replace(tzinfo=datetime.timezone.utc)

    awscli.botocore.auth.get_current_datetime = now
    botocore.auth.get_current_datetime = now
    get_token.get_current_datetime = now

    creds = case["credentials"]
    for var in list(os.environ):
        # AWS_DATA_PATH is awscli's own, set when it is imported.
        if (var.startswith("AWS_") and var != "AWS_DATA_PATH") or var == "KUBERNETES_EXEC_INFO":
            del os.environ[var]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_ACCESS_KEY_ID"] = creds["accessKeyId"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = creds["secretAccessKey"]
    if "sessionToken" in creds:
        os.environ["AWS_SESSION_TOKEN"] = creds["sessionToken"]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = create_clidriver().main(["eks", "get-token", "--cluster-name", case["clusterName"], "--region", case["region"]])
    if code != 0:
        raise SystemExit(f"aws eks get-token failed for {case['name']} (exit {code})")
    return out.getvalue()


def main():
    import awscli

    target = sys.argv[1]
    cases = []
    for case in CASES:
        cases.append({**case, "stdout": run_case(case)})
    vector = {
        "generator": f"aws eks get-token, awscli {awscli.__version__} (PyPI), by scripts/eks-token-vector.py",
        "cases": cases,
    }
    with open(target, "w") as f:
        json.dump(vector, f, indent=2)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {target}")


if __name__ == "__main__":
    main()
