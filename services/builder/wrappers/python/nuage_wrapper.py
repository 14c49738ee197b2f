"""nuage's Python runtime wrapper.

Serves one tenant handler over HTTP and implements the Scaleway Functions runtime contract:
the request becomes an API-Gateway-shaped ``event`` plus a ``context`` dict, the handler is
called as ``handle(event, context)``, and its result becomes the HTTP response.

Standard library only; runs on Python 3.8 and later. See README.md next to this file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib.util
import inspect
import json
import os
import signal
import socket
import sys
import time
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORT = 8080
DEFAULT_CODE_DIR = "/code"
DEFAULT_HANDLER = "handler.handle"
DEFAULT_MEMORY_MB = 128
DEFAULT_PAYLOAD_MAX_SIZE = 6291456  # 6 MiB, as SCW_PAYLOAD_MAX_SIZE on Scaleway

CORS_DEFAULT_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "Content-Type"),
)

# The response record keeps only these keys; anything else a handler returns is dropped.
RECORD_KEYS = ("statusCode", "headers", "body", "isBase64Encoded")

# Headers the wrapper computes itself: a handler cannot set them.
_MANAGED_HEADERS = frozenset(("content-length", "transfer-encoding", "connection"))

_log_lock = threading.Lock()


def log(message: str) -> None:
    """Write one message to stderr (read through sys.stderr at call time)."""
    with _log_lock:
        stream = sys.stderr
        stream.write("nuage-wrapper: " + message.rstrip("\n") + "\n")
        stream.flush()


# --------------------------------------------------------------------------------------------
# Handler loading


class HandlerLoadError(Exception):
    """The handler could not be loaded; the message is served with every 500."""


_module_counter = 0
_module_lock = threading.Lock()


def _module_name(module_path: str, file_path: str) -> str:
    """The name to register the handler module under in sys.modules.

    The natural dotted name (``src/app`` -> ``src.app``) when it is free, so that pickling,
    dataclasses and ``import handler`` from tenant code see the same module; a private alias
    when that name is taken by another module (a stdlib module, or another handler in tests).
    """
    global _module_counter
    natural = module_path.replace("/", ".").replace("\\", ".").strip(".")
    existing = sys.modules.get(natural)
    if natural and existing is None:
        return natural
    if existing is not None and getattr(existing, "__file__", None) == file_path:
        return natural
    with _module_lock:
        _module_counter += 1
        return "_nuage_handler_%d_%s" % (_module_counter, natural.replace(".", "_"))


def _add_sys_path(directory: str, front: bool) -> None:
    if directory in sys.path:
        return
    if front:
        sys.path.insert(0, directory)
    else:
        sys.path.append(directory)


def _display_path(path: str, code_dir: str) -> str:
    try:
        relative = os.path.relpath(path, code_dir)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def load_handler(code_dir: str, handler: str):
    """Import ``<path/file>.<function>`` from code_dir and return the function.

    ``handler.handle`` is the function ``handle`` of ``<code_dir>/handler.py``; ``src/app.main``
    is ``main`` of ``<code_dir>/src/app.py``. For compatibility with handlers written as
    ``folder.file.function``, dots in the module part are tried as folder separators when the
    file with the literal name does not exist. Raises HandlerLoadError with a clear message.
    """
    handler = (handler or "").strip()
    module_path, dot, function_name = handler.rpartition(".")
    if not dot or not module_path or not function_name:
        raise HandlerLoadError(
            "invalid handler %r: expected <path/file>.<function>, e.g. handler.handle" % handler
        )
    module_path = module_path.strip("/")
    candidates = [module_path]
    if "." in module_path:
        candidates.append(module_path.replace(".", "/"))
    file_path = None
    relative = module_path + ".py"
    for candidate in candidates:
        path = os.path.join(code_dir, candidate + ".py")
        if os.path.isfile(path):
            file_path, relative, module_path = path, candidate + ".py", candidate
            break
    if file_path is None:
        raise HandlerLoadError(
            "handler file %s not found in %s (handler %r)" % (relative, code_dir, handler)
        )

    # Vendored dependencies (package/) first, then the code root, then the handler's own
    # folder (so that sibling imports of a handler in a sub-folder work).
    _add_sys_path(code_dir, front=True)
    _add_sys_path(os.path.join(code_dir, "package"), front=True)
    _add_sys_path(os.path.dirname(file_path), front=False)

    name = _module_name(module_path, file_path)
    try:
        spec = importlib.util.spec_from_file_location(name, file_path)
        if spec is None or spec.loader is None:
            raise HandlerLoadError("cannot load handler file %s" % relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    except HandlerLoadError:
        raise
    except KeyboardInterrupt:
        raise
    except SyntaxError as error:
        where = _display_path(error.filename or file_path, code_dir)
        if error.lineno:
            where += " line %s" % error.lineno
        raise HandlerLoadError(
            "syntax error in %s (handler file %s): %s" % (where, relative, error.msg)
        ) from error
    except BaseException as error:  # ImportError, anything raised at import, even SystemExit
        raise HandlerLoadError(
            "error while importing handler file %s: %s: %s"
            % (relative, type(error).__name__, error)
        ) from error

    function = getattr(module, function_name, None)
    if function is None:
        raise HandlerLoadError(
            "handler function %r not found in %s (handler %r)" % (function_name, relative, handler)
        )
    if not callable(function):
        raise HandlerLoadError(
            "handler %r in %s is not a function" % (function_name, relative)
        )
    return function


# --------------------------------------------------------------------------------------------
# Event, context and response


def _int_env(env, name: str, default: int) -> int:
    value = env.get(name)
    if value is None or str(value).strip() == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        log("ignoring invalid %s=%r, using %d" % (name, value, default))
        return default


def make_context(env) -> dict:
    """The context object: memory limit, function name and version from SCW_APPLICATION_*."""
    return {
        "memoryLimitInMb": _int_env(env, "SCW_APPLICATION_MEMORY", DEFAULT_MEMORY_MB),
        "functionName": env.get("SCW_APPLICATION_NAME", ""),
        "functionVersion": env.get("SCW_APPLICATION_VERSION", ""),
    }


def canonical_header_name(name: str) -> str:
    """Go's canonical MIME header form (``x-request-id`` -> ``X-Request-Id``)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _header_value(value: str) -> str:
    """http.server decodes headers as latin-1; the platform passes them on as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def is_base64_body(body: str) -> bool:
    """The Python runtime heuristic: strictly base64-decodable, and the result is UTF-8.

    Deliberately reproduces the quirk that any body which happens to be valid base64
    ("test", "dGVzdA==", the empty string) is flagged.
    """
    try:
        base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return True


def split_target(target: str):
    """Split a request target into (decoded path, raw query)."""
    if target.startswith("/") or target == "*":
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
    else:  # absolute-form (http://host/path?query)
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    return unquote(path, errors="replace"), query


def make_event(method: str, target: str, headers, body: bytes) -> dict:
    """The HTTP event, shaped like an API Gateway proxy request."""
    path, query = split_target(target)
    flat_headers = {}
    for name, value in headers:
        flat_headers[canonical_header_name(name)] = _header_value(value)  # last value wins
    query_parameters = {}
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        query_parameters[name] = value  # last value wins
    try:
        text = body.decode("utf-8")
        encoded = is_base64_body(text)
    except UnicodeDecodeError:
        # Not text: pass the bytes base64-encoded and say so (as the core runtime does).
        text = base64.b64encode(body).decode("ascii")
        encoded = True
    request_id = flat_headers.get("X-Request-Id") or str(uuid.uuid4())
    return {
        "resource": "",
        "path": path,
        "httpMethod": method,
        "headers": flat_headers,
        "multiValueHeaders": None,
        "queryStringParameters": query_parameters,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": {},
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "accountId": "",
            "resourceId": "",
            "stage": "",
            "requestId": request_id,
            "resourcePath": "",
            "authorizer": None,
            "httpMethod": method,
            "apiId": "",
        },
    }


class InvalidResponse(Exception):
    """The handler's result cannot be turned into an HTTP response."""


def _to_json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _is_record(value) -> bool:
    return isinstance(value, dict) and ("statusCode" in value or "body" in value)


def _header_text(text, what: str) -> str:
    text = str(text)
    if "\r" in text or "\n" in text:
        raise InvalidResponse("invalid response header %s %r" % (what, text))
    return text


def _record_headers(headers):
    """Handler headers as a list of (name, value): values may be a string or list of strings."""
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise InvalidResponse("response headers must be an object, not %s" % type(headers).__name__)
    result = []
    for name, value in headers.items():
        name = _header_text(name, "name")
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            result.append((name, _header_text(item, "value")))
    return result


def build_response(result):
    """Turn a handler result into (status, [(header, value)], body bytes).

    A dict with ``statusCode`` (or ``body``) is a response record; otherwise the whole value
    is the body with status 200. A string that is the JSON text of a record is a record too,
    as the platform parses the sub-runtime's output as JSON.
    """
    if isinstance(result, str) and result.lstrip().startswith("{"):
        try:
            parsed = json.loads(result)
        except ValueError:
            parsed = None
        if _is_record(parsed):
            result = parsed

    if not _is_record(result):
        if isinstance(result, str):
            return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode("utf-8")
        try:
            body = _to_json(result)
        except (TypeError, ValueError) as error:
            raise InvalidResponse("result is not JSON-serialisable: %s" % error) from error
        return 200, [("Content-Type", "application/json")], body

    record = {key: result[key] for key in RECORD_KEYS if key in result}
    status = record.get("statusCode")
    if status is None:
        status = 200
    if isinstance(status, bool):
        raise InvalidResponse("invalid statusCode %r" % status)
    try:
        status = int(status)
    except (TypeError, ValueError) as error:
        raise InvalidResponse("invalid statusCode %r" % (record.get("statusCode"),)) from error
    if not 200 <= status <= 599:
        raise InvalidResponse("invalid statusCode %r" % status)

    headers = _record_headers(record.get("headers"))
    body = record.get("body")
    if record.get("isBase64Encoded") and body not in (None, ""):
        if not isinstance(body, str):
            raise InvalidResponse("isBase64Encoded is true but body is not a string")
        try:
            data = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidResponse("isBase64Encoded is true but body is not valid base64") from error
        default_type = "application/octet-stream"
    elif body is None:
        data, default_type = b"", None
    elif isinstance(body, str):
        data, default_type = body.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        try:
            data = _to_json(body)
        except (TypeError, ValueError) as error:
            raise InvalidResponse("body is not JSON-serialisable: %s" % error) from error
        default_type = "application/json"
    if default_type and not any(name.lower() == "content-type" for name, _ in headers):
        headers.insert(0, ("Content-Type", default_type))
    return status, headers, data


# --------------------------------------------------------------------------------------------
# HTTP server


class _State:
    """What every request needs: the handler (or why it failed to load) and the settings."""

    def __init__(self, function, load_error, env):
        self.function = function
        self.load_error = load_error
        self.env = env
        self.context = make_context(env)
        self.payload_max_size = _int_env(env, "SCW_PAYLOAD_MAX_SIZE", DEFAULT_PAYLOAD_MAX_SIZE)


class _PayloadTooLarge(Exception):
    pass


class _BadRequest(Exception):
    pass


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nuage"
    sys_version = ""
    state: _State  # set on the subclass made by make_server

    # Every method goes to the same place: do_GET, do_POST, do_PURGE, ...
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):  # no access log: the gateway keeps one
        pass

    def log_error(self, format, *args):
        log("%s: %s" % (self.address_string(), format % args))

    # -- request --------------------------------------------------------------------------

    def _content_length(self):
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        value = value.strip()
        if not value or not all("0" <= c <= "9" for c in value):
            raise _BadRequest("invalid Content-Length")
        return int(value)

    def handle_expect_100(self):
        # Refuse an oversized body before the client sends it.
        try:
            length = self._content_length()
        except _BadRequest:
            length = None
        if length is not None and length > self.state.payload_max_size:
            self._send_payload_too_large()
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        limit = self.state.payload_max_size
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in encoding:
            return self._read_chunked(limit)
        length = self._content_length()
        if not length:
            return b""
        if length > limit:
            raise _PayloadTooLarge()
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest("incomplete body")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise _BadRequest("incomplete chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as error:
                raise _BadRequest("invalid chunk size") from error
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self.rfile.readline(65537)
                    if not trailer or trailer in (b"\r\n", b"\n"):
                        break
                return b"".join(chunks)
            total += size
            if total > limit:
                raise _PayloadTooLarge()
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _BadRequest("incomplete chunked body")
            chunks.append(chunk)
            self.rfile.readline(65537)  # CRLF after the chunk

    # -- response -------------------------------------------------------------------------

    def _send(self, status, headers, body: bytes, close=False):
        names = {name.lower() for name, _ in headers}
        self.send_response(status)
        for name, value in CORS_DEFAULT_HEADERS:
            if name.lower() not in names:  # handler headers override the defaults
                self.send_header(name, value)
        for name, value in headers:
            if name.lower() not in _MANAGED_HEADERS:
                self.send_header(name, value)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_text(self, status, message, close=False):
        self._send(
            status,
            [("Content-Type", "text/plain; charset=utf-8")],
            message.encode("utf-8"),
            close=close,
        )

    def _send_payload_too_large(self):
        # The body was not read: the connection cannot be reused.
        self._send_text(413, "Request payload too large", close=True)
        self._discard_input()

    def _discard_input(self, max_bytes=32 << 20, max_seconds=5.0):
        """Read (and drop) what the client is still sending, so that it gets to read the 413
        instead of a connection reset; bounded in bytes and time."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline, total = time.monotonic() + max_seconds, 0
            while total < max_bytes and time.monotonic() < deadline:
                data = self.connection.recv(65536)
                if not data:
                    break
                total += len(data)
        except OSError:
            pass

    def _dispatch(self):
        state = self.state
        try:
            body = self._read_body()
        except _PayloadTooLarge:
            self._send_payload_too_large()
            return
        except _BadRequest as error:
            self._send_text(400, "bad request: %s" % error, close=True)
            return

        if state.load_error is not None:
            self._send_text(500, "function failed to load: %s" % state.load_error)
            return

        event = make_event(self.command, self.path, self.headers.items(), body)
        context = dict(state.context)
        try:
            result = state.function(event, context)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            status, headers, data = build_response(result)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # the handler's failure must not kill the server
            log(
                "function invocation failed (%s %s):\n%s"
                % (self.command, event["path"], traceback.format_exc())
            )
            self._send_text(500, "function invocation failed: %s" % _describe(error))
            return
        self._send(status, headers, data)


async def _await(awaitable):
    return await awaitable


def _describe(error: BaseException) -> str:
    message = str(error)
    return message if message else type(error).__name__


def make_server(host, port, code_dir, handler, env=None):
    """Load the handler and return a ThreadingHTTPServer bound to (host, port), not serving.

    env (default os.environ) supplies SCW_APPLICATION_NAME/MEMORY/VERSION and
    SCW_PAYLOAD_MAX_SIZE. A handler that fails to load is logged once; the server then answers
    every request with a 500 that says why.
    """
    if env is None:
        env = os.environ
    code_dir = os.path.abspath(code_dir)
    function, load_error = None, None
    try:
        function = load_handler(code_dir, handler)
    except HandlerLoadError as error:
        load_error = str(error)
        cause = error.__cause__
        if cause is not None:
            detail = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
            log("function failed to load: %s\n%s" % (load_error, detail))
        else:
            log("function failed to load: %s" % load_error)

    state = _State(function, load_error, env)
    handler_class = type("NuageRequestHandler", (RequestHandler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler_class)
    server.daemon_threads = True
    return server


def _terminate(signum, frame):
    raise KeyboardInterrupt  # stops serve_forever; as PID 1 the default action would not


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    # Tenant print() output must reach the logs promptly.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    port = _int_env(os.environ, "PORT", DEFAULT_PORT)
    code_dir = os.environ.get("NUAGE_CODE_DIR") or DEFAULT_CODE_DIR
    handler = os.environ.get("NUAGE_HANDLER") or DEFAULT_HANDLER
    server = make_server("0.0.0.0", port, code_dir, handler)
    log(
        "serving %s from %s on 0.0.0.0:%d"
        % (handler, os.path.abspath(code_dir), server.server_address[1])
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
