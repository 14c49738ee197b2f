"""Tests for nuage_wrapper: real HTTP requests to a wrapper serving handlers from a temp dir.

Run from the repository root:
    python3 -m unittest discover -s services/builder/wrappers/python -p 'test_*.py'
"""

import base64
import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
import urllib.error
import urllib.request

import nuage_wrapper

HERE = os.path.dirname(os.path.abspath(__file__))


class Served:
    """A wrapper serving one handler on 127.0.0.1:<ephemeral> in a thread."""

    def __init__(self, files, handler="handler.handle", env=None):
        self.tmp = tempfile.TemporaryDirectory()
        for name, content in files.items():
            path = os.path.join(self.tmp.name, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(content))
        self.stderr = io.StringIO()
        with contextlib.redirect_stderr(self.stderr):
            self.server = nuage_wrapper.make_server(
                "127.0.0.1", 0, self.tmp.name, handler, env=env if env is not None else {}
            )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def request(self, path="/", method="GET", data=None, headers=None):
        """(status, headers, body bytes); HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.tmp.cleanup()


class WrapperTestCase(unittest.TestCase):
    def serve(self, files, handler="handler.handle", env=None):
        if isinstance(files, str):
            files = {"handler.py": files}
        served = Served(files, handler=handler, env=env)
        self.addCleanup(served.close)
        return served

    def call(self, served, *args, **kwargs):
        """A request with the wrapper's stderr captured into served.stderr."""
        with contextlib.redirect_stderr(served.stderr):
            return served.request(*args, **kwargs)


ECHO = """
    import json

    def handle(event, context):
        return {"statusCode": 200, "body": {"event": event, "context": context}}
"""


class ResponseTests(WrapperTestCase):
    def test_plain_string(self):
        served = self.serve("def handle(event, context):\n    return 'Hello World!'\n")
        status, headers, body = self.call(served)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"Hello World!")
        self.assertEqual(headers["Access-Control-Allow-Origin"], "*")
        self.assertEqual(headers["Access-Control-Allow-Headers"], "Content-Type")
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))

    def test_dict_without_status_code_is_json_body(self):
        served = self.serve(
            "def handle(event, context):\n    return {'message': 'hi', 'n': [1, 2]}\n"
        )
        status, headers, body = self.call(served)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(json.loads(body), {"message": "hi", "n": [1, 2]})
        self.assertEqual(headers["Access-Control-Allow-Origin"], "*")

    def test_other_values_are_json(self):
        served = self.serve("def handle(event, context):\n    return [1, 'two', None]\n")
        status, headers, body = self.call(served)
        self.assertEqual((status, json.loads(body)), (200, [1, "two", None]))
        self.assertEqual(headers["Content-Type"], "application/json")

    def test_response_record(self):
        served = self.serve(
            """
            def handle(event, context):
                return {
                    "statusCode": 201,
                    "headers": {
                        "X-Single": "one",
                        "X-Multi": ["a", "b"],
                        "Content-Type": ["application/vnd.test+json"],
                        "access-control-allow-origin": "https://example.com",
                    },
                    "body": {"created": True},
                    "unknown": "dropped",
                }
            """
        )
        status, headers, body = self.call(served)
        self.assertEqual(status, 201)
        self.assertEqual(json.loads(body), {"created": True})
        self.assertEqual(headers["X-Single"], "one")
        self.assertEqual(headers.get_all("X-Multi"), ["a", "b"])
        self.assertEqual(headers["Content-Type"], "application/vnd.test+json")
        self.assertEqual(headers.get_all("Access-Control-Allow-Origin"), ["https://example.com"])
        self.assertEqual(headers["Access-Control-Allow-Headers"], "Content-Type")
        self.assertIsNone(headers["unknown"])

    def test_record_string_body_is_written_as_is(self):
        served = self.serve(
            "def handle(event, context):\n"
            "    return {'statusCode': 404, 'body': '{\"not\": \"reparsed\"}'}\n"
        )
        status, _, body = self.call(served)
        self.assertEqual((status, body), (404, b'{"not": "reparsed"}'))

    def test_record_without_status_code_or_body(self):
        served = self.serve(
            """
            def handle(event, context):
                if event["path"] == "/body-only":
                    return {"body": "just the body", "headers": {"X-A": "1"}}
                return {"statusCode": 204}
            """
        )
        status, headers, body = self.call(served, "/body-only")
        self.assertEqual((status, body, headers["X-A"]), (200, b"just the body", "1"))
        status, _, body = self.call(served, "/")
        self.assertEqual((status, body), (204, b""))

    def test_string_holding_a_json_record_is_a_record(self):
        served = self.serve(
            "import json\n"
            "def handle(event, context):\n"
            "    return json.dumps({'statusCode': 202, 'body': 'accepted'})\n"
        )
        self.assertEqual(self.call(served)[::2], (202, b"accepted"))

    def test_base64_response_is_binary(self):
        payload = bytes(range(256))
        served = self.serve(
            """
            import base64
            def handle(event, context):
                return {
                    "statusCode": 200,
                    "headers": {"Content-Type": "image/png"},
                    "body": base64.b64encode(bytes(range(256))).decode(),
                    "isBase64Encoded": True,
                }
            """
        )
        status, headers, body = self.call(served)
        self.assertEqual(status, 200)
        self.assertEqual(body, payload)
        self.assertEqual(headers["Content-Type"], "image/png")
        self.assertEqual(headers["Content-Length"], "256")

    def test_head_has_no_body(self):
        served = self.serve("def handle(event, context):\n    return event['httpMethod']\n")
        status, headers, body = self.call(served, method="HEAD")
        self.assertEqual((status, body, headers["Content-Length"]), (200, b"", "4"))

    def test_exception_is_500(self):
        served = self.serve(
            """
            def handle(event, context):
                raise ValueError("boom")
            """
        )
        status, headers, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertEqual(body, b"function invocation failed: boom")
        self.assertEqual(headers["Access-Control-Allow-Origin"], "*")
        log = served.stderr.getvalue()
        self.assertIn("Traceback", log)
        self.assertIn("ValueError: boom", log)
        # The server survives.
        self.assertEqual(self.call(served)[0], 500)

    def test_unserialisable_result_is_500(self):
        served = self.serve("def handle(event, context):\n    return {1, 2}\n")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertTrue(body.startswith(b"function invocation failed: "), body)

    def test_invalid_status_code_is_500(self):
        served = self.serve("def handle(event, context):\n    return {'statusCode': 'x'}\n")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"statusCode", body)

    def test_async_handler(self):
        served = self.serve("async def handle(event, context):\n    return 'async ok'\n")
        self.assertEqual(self.call(served)[::2], (200, b"async ok"))


class EventTests(WrapperTestCase):
    def echo(self, served, *args, **kwargs):
        status, _, body = self.call(served, *args, **kwargs)
        self.assertEqual(status, 200, body)
        return json.loads(body)["event"]

    def test_event_fields(self):
        served = self.serve(ECHO)
        event = self.echo(
            served,
            "/some/path%20x?a=1&a=2&b=&c=%C3%A9",
            method="POST",
            data=b"hello world!",
            headers={"X-Test": "yes", "x-lower-case": "v", "Content-Type": "text/plain"},
        )
        self.assertEqual(event["resource"], "")
        self.assertEqual(event["path"], "/some/path x")
        self.assertEqual(event["httpMethod"], "POST")
        self.assertEqual(event["queryStringParameters"], {"a": "2", "b": "", "c": "\u00e9"})
        self.assertEqual(event["headers"]["X-Test"], "yes")
        self.assertEqual(event["headers"]["X-Lower-Case"], "v")
        self.assertEqual(event["headers"]["Content-Type"], "text/plain")
        self.assertEqual(event["body"], "hello world!")
        self.assertIs(event["isBase64Encoded"], False)
        self.assertIsNone(event["multiValueHeaders"])
        self.assertIsNone(event["multiValueQueryStringParameters"])
        self.assertIsNone(event["pathParameters"])
        self.assertEqual(event["stageVariables"], {})
        ctx = event["requestContext"]
        self.assertEqual(ctx["httpMethod"], "POST")
        self.assertIsNone(ctx["authorizer"])
        for key in ("accountId", "resourceId", "stage", "resourcePath", "apiId"):
            self.assertEqual(ctx[key], "", key)
        self.assertEqual(len(ctx["requestId"]), 36)  # a uuid4

    def test_base64_heuristic(self):
        served = self.serve(ECHO)
        event = self.echo(served, "/", method="POST", data=b"dGVzdA==")
        self.assertEqual(event["body"], "dGVzdA==")
        self.assertIs(event["isBase64Encoded"], True)
        event = self.echo(served, "/", method="POST", data=b"hello world!")
        self.assertIs(event["isBase64Encoded"], False)
        # Valid base64 that does not decode to UTF-8 is not flagged (Python rule).
        event = self.echo(served, "/", method="POST", data=base64.b64encode(b"\xff\xfe"))
        self.assertIs(event["isBase64Encoded"], False)

    def test_binary_body_is_passed_base64_encoded(self):
        served = self.serve(ECHO)
        event = self.echo(served, "/", method="PUT", data=b"\x00\xff\xfebinary")
        self.assertIs(event["isBase64Encoded"], True)
        self.assertEqual(base64.b64decode(event["body"]), b"\x00\xff\xfebinary")

    def test_headers_last_value_wins_and_request_id(self):
        served = self.serve(ECHO)
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        self.addCleanup(conn.close)
        conn.putrequest("GET", "/h")
        conn.putheader("X-Dup", "first")
        conn.putheader("X-Dup", "second")
        conn.putheader("X-Request-ID", "req-123")
        conn.endheaders()
        with contextlib.redirect_stderr(served.stderr):
            resp = conn.getresponse()
            event = json.loads(resp.read())["event"]
        self.assertEqual(event["headers"]["X-Dup"], "second")
        self.assertEqual(event["requestContext"]["requestId"], "req-123")

    def test_every_method(self):
        served = self.serve(ECHO)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"):
            event = self.echo(served, "/m", method=method)
            self.assertEqual(event["httpMethod"], method)
            self.assertEqual(event["requestContext"]["httpMethod"], method)

    def test_chunked_request_body(self):
        served = self.serve(ECHO)
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        self.addCleanup(conn.close)
        with contextlib.redirect_stderr(served.stderr):
            conn.request("POST", "/c", body=iter([b"hello ", b"chunks"]), encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
            resp = conn.getresponse()
            event = json.loads(resp.read())["event"]
        self.assertEqual(event["body"], "hello chunks")

    def test_keep_alive(self):
        served = self.serve("def handle(event, context):\n    return event['body']\n")
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        self.addCleanup(conn.close)
        with contextlib.redirect_stderr(served.stderr):
            for i in range(3):
                conn.request("POST", "/", body=("n%d" % i).encode())
                resp = conn.getresponse()
                self.assertEqual(resp.read(), ("n%d" % i).encode())

    def test_context_from_env(self):
        env = {
            "SCW_APPLICATION_NAME": "my-func",
            "SCW_APPLICATION_MEMORY": "512",
            "SCW_APPLICATION_VERSION": "3",
        }
        served = self.serve(ECHO, env=env)
        status, _, body = self.call(served)
        self.assertEqual(
            json.loads(body)["context"],
            {"memoryLimitInMb": 512, "functionName": "my-func", "functionVersion": "3"},
        )

    def test_context_defaults(self):
        served = self.serve(ECHO, env={})
        status, _, body = self.call(served)
        self.assertEqual(
            json.loads(body)["context"],
            {"memoryLimitInMb": 128, "functionName": "", "functionVersion": ""},
        )


class PayloadLimitTests(WrapperTestCase):
    def test_413_above_limit(self):
        served = self.serve(
            "def handle(event, context):\n    return str(len(event['body']))\n",
            env={"SCW_PAYLOAD_MAX_SIZE": "10"},
        )
        status, headers, body = self.call(served, "/", method="POST", data=b"x" * 10)
        self.assertEqual((status, body), (200, b"10"))
        status, headers, body = self.call(served, "/", method="POST", data=b"x" * 11)
        self.assertEqual(status, 413)
        self.assertEqual(body, b"Request payload too large")
        self.assertEqual(headers["Access-Control-Allow-Origin"], "*")

    def test_413_chunked(self):
        served = self.serve(
            "def handle(event, context):\n    return 'ok'\n", env={"SCW_PAYLOAD_MAX_SIZE": "10"}
        )
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        self.addCleanup(conn.close)
        with contextlib.redirect_stderr(served.stderr):
            conn.request("POST", "/", body=iter([b"x" * 8, b"y" * 8]), encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
            resp = conn.getresponse()
            resp.read()
        self.assertEqual(resp.status, 413)

    def test_default_limit_is_6_mib(self):
        served = self.serve("def handle(event, context):\n    return 'ok'\n", env={})
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        self.addCleanup(conn.close)
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", str(6291456 + 1))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        with contextlib.redirect_stderr(served.stderr):
            resp = conn.getresponse()
            resp.read()
        self.assertEqual(resp.status, 413)


class LoadingTests(WrapperTestCase):
    def test_handler_in_sub_folder(self):
        served = self.serve(
            {
                "src/app.py": """
                    from helper_sibling_nuage import greet
                    def main(event, context):
                        return greet(event["path"])
                """,
                "src/helper_sibling_nuage.py": """
                    def greet(path):
                        return "hello from " + path
                """,
            },
            handler="src/app.main",
        )
        self.assertEqual(self.call(served, "/sub")[::2], (200, b"hello from /sub"))

    def test_dotted_folder_handler_fallback(self):
        served = self.serve(
            {"handlers/hello.py": "def handler(event, context):\n    return 'dotted'\n"},
            handler="handlers.hello.handler",
        )
        self.assertEqual(self.call(served)[::2], (200, b"dotted"))

    def test_vendored_dependency_from_package(self):
        served = self.serve(
            {
                "handler.py": """
                    import nuage_vendored_dep_xyz
                    def handle(event, context):
                        return nuage_vendored_dep_xyz.VALUE
                """,
                "package/nuage_vendored_dep_xyz/__init__.py": "VALUE = 'vendored!'\n",
            }
        )
        self.assertEqual(self.call(served)[::2], (200, b"vendored!"))

    def test_missing_function(self):
        served = self.serve("def other(event, context):\n    return 'x'\n", handler="handler.handle")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"'handle'", body)
        self.assertIn(b"handler.py", body)
        # Logged once (at load), not per request.
        self.call(served)
        self.assertEqual(served.stderr.getvalue().count("failed to load"), 1)

    def test_missing_file(self):
        served = self.serve({"other.py": ""}, handler="nope/missing.handle")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"nope/missing.py", body)

    def test_syntax_error(self):
        served = self.serve("def handle(event, context)\n    return 'x'\n")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"syntax error", body)
        self.assertIn(b"handler.py", body)

    def test_import_error(self):
        served = self.serve("import nuage_module_that_does_not_exist\ndef handle(e, c):\n    pass\n")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"nuage_module_that_does_not_exist", body)
        self.assertIn("Traceback", served.stderr.getvalue())

    def test_invalid_handler_name(self):
        served = self.serve("def handle(e, c):\n    pass\n", handler="handler")
        status, _, body = self.call(served)
        self.assertEqual(status, 500)
        self.assertIn(b"invalid handler", body)


class MainTests(unittest.TestCase):
    def test_main_serves_on_port(self):
        with tempfile.TemporaryDirectory() as code:
            with open(os.path.join(code, "handler.py"), "w") as f:
                f.write("def handle(event, context):\n    return context['functionName']\n")
            env = dict(os.environ, PORT="0", NUAGE_CODE_DIR=code, SCW_APPLICATION_NAME="fn")
            env.pop("NUAGE_HANDLER", None)
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "nuage_wrapper.py")],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                line = proc.stderr.readline()
                self.assertIn("serving handler.handle", line)
                port = int(line.rsplit(":", 1)[1])
                with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as resp:
                    self.assertEqual(resp.read(), b"fn")
            finally:
                proc.terminate()
                proc.wait(10)
                proc.stderr.close()


if __name__ == "__main__":
    unittest.main()
