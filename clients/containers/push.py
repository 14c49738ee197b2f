"""Pushes the client suites' server (CLIENT_SERVER_BINARY) as image `<registry_endpoint>/<name>:latest`
into nuage's registry of OCI layouts (CLIENT_REGISTRY_DIR), where a push to a namespace's
`registry_endpoint` lands; prints the image's reference. Used by clients/python/containers_test.py
(imported) and clients/js/containers.test.mjs (`python3 push.py <registry_endpoint> <name>`)."""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def push(registry_endpoint, name):
    """Writes the suite's server as image `<registry_endpoint>/<name>:latest`; returns its reference."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        with open(os.environ["CLIENT_SERVER_BINARY"], "rb") as binary:
            data = binary.read()
        entry = tarfile.TarInfo("server")
        entry.size, entry.mode = len(data), 0o755
        tar.addfile(entry, io.BytesIO(data))
    plain = layer.getvalue()
    zipped = gzip.compress(plain, compresslevel=1)
    digest = lambda blob: "sha256:" + hashlib.sha256(blob).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "1000", "Entrypoint": ["/server"], "Env": ["PATH=/"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(plain)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": len(zipped),
                    "digest": digest(zipped)}],
    }).encode()
    layout = os.path.join(os.environ["CLIENT_REGISTRY_DIR"], registry_endpoint.split("/", 1)[1], name)
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    for blob in (zipped, config, manifest):
        with open(os.path.join(layout, "blobs", "sha256", digest(blob)[7:]), "wb") as out:
            out.write(blob)
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        out.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(manifest),
            "digest": digest(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, out)
    return f"{registry_endpoint}/{name}:latest"


if __name__ == "__main__":
    print(push(sys.argv[1], sys.argv[2]))
