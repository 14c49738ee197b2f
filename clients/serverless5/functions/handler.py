"""Answers with the variables and secrets it was given; logs every call."""
import json
import os


def handle(event, context):
    print("hello-python called:", event["httpMethod"])
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {
                "runtime": "python",
                "ns_var": os.environ.get("NS_VAR"),
                "fn_var": os.environ.get("FN_VAR"),
                "ns_secret": os.environ.get("NS_SECRET"),
                "name": os.environ.get("SCW_APPLICATION_NAME"),
            }
        ),
    }
