//! Functions from zip to deployed: the steps every suite that runs code goes through.

use crate::Tenant;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// Returns a zip archive holding `files` (path, content).
pub fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Returns the first installed runtime whose name starts with `prefix` (`node`, `python`, `go`);
/// v1alpha2 lists names, v1beta1 runtimes with a `name`.
pub async fn runtime(tenant: &Tenant, prefix: &str) -> String {
    let runtimes = tenant.get("/runtimes").await.body;
    runtimes["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|runtime| runtime.as_str().or_else(|| runtime["name"].as_str()))
        .find(|name| name.starts_with(prefix))
        .unwrap_or_else(|| panic!("a {prefix} runtime is installed here"))
        .to_owned()
}

/// Creates a namespace and a function in it; returns the function.
pub async fn function(tenant: &Tenant, namespace: &str, body: Value) -> Value {
    let namespace_id = tenant.ready_namespace_id(namespace).await;
    let mut body = body;
    body["namespace_id"] = json!(namespace_id);
    let answer = tenant.post("/functions", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// Uploads `archive` as the function's code through its presigned URL.
pub async fn upload(tenant: &Tenant, function_id: &str, archive: Vec<u8>) {
    let answer = tenant
        .get(&format!(
            "/functions/{function_id}/upload-url?content_length={}",
            archive.len()
        ))
        .await;
    let response = reqwest::Client::new()
        .put(answer.body["url"].as_str().unwrap())
        .header("content-type", "application/octet-stream")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Deploys the function; returns it, `pending`.
pub async fn deploy(tenant: &Tenant, function_id: &str) -> Value {
    let answer = tenant
        .post(&format!("/functions/{function_id}/deploy"), json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "pending");
    answer.body
}

/// Waits (up to 20 s) until the function is `ready` or `error`; returns it.
pub async fn settled(tenant: &Tenant, function_id: &str) -> Value {
    settled_within(tenant, function_id, Duration::from_secs(20)).await
}

/// Waits up to `limit` until the function is `ready` or `error`; returns it.
pub async fn settled_within(tenant: &Tenant, function_id: &str, limit: Duration) -> Value {
    tenant
        .poll_until(&format!("/functions/{function_id}"), limit, |a| {
            a.body["status"] == "ready" || a.body["status"] == "error"
        })
        .await
        .body
}

/// Creates function `f` on the node runtime in a new namespace; returns it.
pub async fn node_function(tenant: &Tenant, namespace: &str) -> Value {
    let node = runtime(tenant, "node").await;
    function(tenant, namespace, json!({"name": "f", "runtime": node})).await
}

/// Creates function `f` on the first runtime whose name starts with `runtime_prefix` in a new
/// namespace and uploads `files` as its code, without deploying it; returns its id.
pub async fn uploaded(tenant: &Tenant, namespace: &str, runtime_prefix: &str, files: &[(&str, &[u8])]) -> String {
    let runtime = runtime(tenant, runtime_prefix).await;
    let created = function(tenant, namespace, json!({"name": "f", "runtime": runtime})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    upload(tenant, &id, zip(files)).await;
    id
}

/// Uploads `archive` as the function's code, deploys it and waits up to `limit` until it is
/// `ready` or `error`; returns it.
pub async fn upload_and_deploy(tenant: &Tenant, function_id: &str, archive: Vec<u8>, limit: Duration) -> Value {
    upload(tenant, function_id, archive).await;
    deploy(tenant, function_id).await;
    settled_within(tenant, function_id, limit).await
}

/// Uploads `files` to the function and deploys them; returns it once `ready` (within 20 s).
pub async fn redeployed(tenant: &Tenant, function_id: &str, files: &[(&str, &[u8])]) -> Value {
    let done = upload_and_deploy(tenant, function_id, zip(files), Duration::from_secs(20)).await;
    assert_eq!(done["status"], "ready", "{done}");
    done
}

/// Creates a function in a new namespace, uploads `files` and deploys it; returns it `ready`.
pub async fn deployed(tenant: &Tenant, namespace: &str, body: Value, files: &[(&str, &[u8])]) -> Value {
    let created = function(tenant, namespace, body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let done = upload_and_deploy(tenant, &id, zip(files), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    done
}

/// Creates a function of `body` on the node runtime in a new namespace, with `code` as its
/// `handler.js`, and deploys it; returns it `ready`.
pub async fn deployed_node(tenant: &Tenant, namespace: &str, body: Value, code: &[u8]) -> Value {
    let mut body = body;
    body["runtime"] = json!(runtime(tenant, "node").await);
    deployed(tenant, namespace, body, &[("handler.js", code)]).await
}

/// Creates private function `name` on the node runtime in a new namespace, with `code` as its
/// `handler.js`, and deploys it; returns it `ready`.
pub async fn deployed_private_node(tenant: &Tenant, namespace: &str, name: &str, code: &[u8]) -> Value {
    deployed_node(tenant, namespace, json!({"name": name, "privacy": "private"}), code).await
}

/// Pushes `binary` as image `app:latest` of the ready `namespace`'s repository in the embedded
/// registry at `registry` (an OCI layout), creates container `app` running it with
/// `environment`, and deploys it; returns its id, `pending`.
pub async fn deploy_app_container(
    tenant: &Tenant,
    registry: &std::path::Path,
    namespace: &Value,
    binary: &[u8],
    environment: Value,
) -> String {
    let endpoint = namespace["registry_endpoint"].as_str().unwrap();
    let layout = registry.join(endpoint.split_once('/').unwrap().1).join("app");
    write_image_layout(&layout, "latest", &[("server", binary, 0o755)], &["/server"]);
    let id = tenant
        .create(
            "/containers",
            json!({"name": "app", "namespace_id": namespace["id"], "environment_variables": environment}),
        )
        .await;
    let deploying = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
    assert_eq!(deploying.body["status"], "pending");
    id
}

/// Waits up to `limit` until container `id` is no longer `pending`; returns it.
pub async fn container_settled(tenant: &Tenant, id: &str, limit: Duration) -> Value {
    tenant
        .poll_until(&format!("/containers/{id}"), limit, |answer| {
            answer.body["status"] != "pending"
        })
        .await
        .body
}

/// Deploys container `id`, waits (up to `limit`) until it is `ready`, and returns the JSON
/// its endpoint answers at `/`.
pub async fn deploy_and_call_container(tenant: &Tenant, id: &str, limit: Duration) -> Value {
    let deploying = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
    let ready = container_settled(tenant, id, limit).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    crate::get_json(format!("{}/", ready["endpoint"].as_str().unwrap())).await
}

/// Returns the pids of the processes whose environment says they run application `id`.
pub fn processes_of(id: &str) -> Vec<u32> {
    let needle = format!("SCW_APPLICATION_ID={id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|byte| *byte == 0).any(|pair| pair == needle.as_bytes()))
        })
        .collect()
}

/// Pushes `binary` as `/server`, the entrypoint of a one-layer image, to the embedded registry
/// of `server` under `<registry_endpoint>/<name>:latest` (as a tenant's push to its namespace's
/// repository lands); returns that image reference.
pub fn push_server_image(server: &crate::TestServer, registry_endpoint: &str, name: &str, binary: &[u8]) -> String {
    let (_, repository) = registry_endpoint
        .split_once('/')
        .expect("a registry endpoint is host/repository");
    let layout = server.config.data_dir.join("registry").join(repository).join(name);
    write_image_layout(&layout, "latest", &[("server", binary, 0o755)], &["/server"]);
    format!("{registry_endpoint}/{name}:latest")
}

/// Writes a one-layer OCI image (`files`: path, content, mode) into the image layout at
/// `layout`, tagged `tag`, that runs `entrypoint` as user 1000.
pub fn write_image_layout(layout: &std::path::Path, tag: &str, files: &[(&str, &[u8], u32)], entrypoint: &[&str]) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, *data).unwrap();
    }
    write_image_layout_of(layout, tag, tar.into_inner().unwrap(), entrypoint);
}

/// Writes a one-layer OCI image whose layer is the tar archive `plain` into the image layout
/// at `layout`, tagged `tag`, that runs `entrypoint` as user 1000.
pub fn write_image_layout_of(layout: &std::path::Path, tag: &str, plain: Vec<u8>, entrypoint: &[&str]) {
    let config = json!({"User": "1000", "Entrypoint": entrypoint, "Env": ["PATH=/"], "WorkingDir": "/"});
    write_image_layout_with(layout, tag, plain, config);
}

/// Writes a one-layer OCI image whose layer is the tar archive `plain` and whose config's
/// `config` (user, entrypoint, environment...) is `run`, into the image layout at `layout`,
/// tagged `tag`.
pub fn write_image_layout_with(layout: &std::path::Path, tag: &str, plain: Vec<u8>, run: Value) {
    use sha2::Digest;
    let sha = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&plain).unwrap();
    let layer = gzip.finish().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&plain))]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(),
                   "digest": format!("sha256:{}", sha(&config))},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": layer.len(),
                    "digest": format!("sha256:{}", sha(&layer))}],
    }))
    .unwrap();
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(sha(blob)), blob).unwrap();
    }
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": manifest.len(),
                       "digest": format!("sha256:{}", sha(&manifest)),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A static HTTP server for a container image: answers with its uid, path, `GREETING`, the
/// token headers it received, `SCW_PUBLIC`/`SCW_PUBLIC_KEY` and the content of the file
/// `version` beside it in the image, if any.
pub const SERVER_GO: &str = r#"package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/early" {
			// Answers at once, keeping the connection, then reads the request's body (as a
			// server that refuses an upload does).
			conn, buffered, _ := w.(http.Hijacker).Hijack()
			buffered.WriteString("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
			buffered.Flush()
			io.CopyN(io.Discard, buffered, r.ContentLength)
			conn.Close()
			return
		}
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path == "/close" {
			// Answers, then closes the connection.
			w.Header().Set("Connection", "close")
		}
		tokens := r.Header.Get("X-Auth-Token") + r.Header.Get("Scw-Functions-Token") + r.Header.Get("Scw_functions_token")
		version := []byte{}
		if executable, err := os.Executable(); err == nil {
			version, _ = os.ReadFile(filepath.Join(filepath.Dir(executable), "version"))
		}
		fmt.Fprintf(w, `{"uid":%d,"path":%q,"greeting":%q,"tokens":%q,"public":%q,"public_key":%q,"remote":%q,"version":%q}`,
			os.Getuid(), r.URL.Path, os.Getenv("GREETING"), tokens, os.Getenv("SCW_PUBLIC"), os.Getenv("SCW_PUBLIC_KEY"), r.RemoteAddr, version)
	})
	// Closes connections idle for more than 300 ms, as servers with a short keep-alive do.
	server := &http.Server{Addr: ":" + os.Getenv("PORT"), IdleTimeout: 300 * time.Millisecond}
	if err := server.ListenAndServe(); err != nil {
		panic(err)
	}
}
"#;

/// A container that listens on the port its first argument names (not `$PORT`), whose
/// `/healthz` answers 503 until the duration its second argument names has passed, whose `/slow`
/// answers after 800 ms with an id of the instance, and whose `/` answers with its command line.
pub const PROBED_GO: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	started := time.Now()
	instance := fmt.Sprint(started.UnixNano())
	var sick time.Duration
	if len(os.Args) > 2 {
		sick, _ = time.ParseDuration(os.Args[2])
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(started) < sick {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	http.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(800 * time.Millisecond)
		fmt.Fprintf(w, `{"instance":%q}`, instance)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"command":%q,"listening":%q,"env_port":%q}`, strings.Join(os.Args, " "), port, os.Getenv("PORT"))
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		panic(err)
	}
}
"#;

/// Builds [`SERVER_GO`] as a static binary; `None` where no Go toolchain is installed.
pub fn go_server_binary() -> Option<Vec<u8>> {
    go_binary(SERVER_GO)
}

/// Builds the Go program `source` (standard library only) as a static binary; `None` where no
/// Go toolchain is installed.
pub fn go_binary(source: &str) -> Option<Vec<u8>> {
    let version = std::process::Command::new("go").arg("version").output().ok()?;
    assert!(version.status.success());
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("main.go"), source).unwrap();
    std::fs::write(folder.path().join("go.mod"), "module server\n\ngo 1.19\n").unwrap();
    let built = std::process::Command::new("go")
        .args(["build", "-o", "server", "."])
        .current_dir(folder.path())
        .env("CGO_ENABLED", "0")
        .env("GOPROXY", "off")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    Some(std::fs::read(folder.path().join("server")).unwrap())
}
