//! Compiles `proto/nuage/**.proto` with protox (no `protoc` needed) and generates tonic code.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) {
    // A directory's mtime changes only when its own entries do: watch every level and file.
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir).expect("proto directory is readable") {
        let path = entry.expect("proto directory entry").path();
        if path.is_dir() {
            proto_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // prost-build does not emit this itself: `proto_files` asks for a rebuild when any proto
    // or proto directory changes.
    let mut files = Vec::new();
    proto_files(&root.join("nuage"), &mut files);
    files.sort();
    let descriptors = protox::compile(&files, [&root]).expect("protos compile");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)
        .expect("tonic code generation");
}
