//! Function images as OCI image layouts: one repository per namespace under the registry
//! directory, a wrapper layer and a code layer (above a runtime base image's layers, when
//! the runtime has one), a config with entrypoint, env, working directory and user 1000, a
//! manifest tagged with the deployment id.

use crate::base::Base;
use crate::checks::Entry;
use crate::error::BuilderError;
use flate2::Compression;
use flate2::write::GzEncoder;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, RootFsBuilder, Sha256Digest,
};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

/// Where the wrapper goes in the image, and where the code goes.
pub const WRAPPER_DIR: &str = "opt/nuage/wrapper";
/// The tenant's code directory in the image.
pub const CODE_DIR: &str = "code";
/// The annotation that names a tag in an image layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

const NODE_WRAPPER: &str = include_str!("../wrappers/node/server.js");
const PYTHON_WRAPPER: &str = include_str!("../wrappers/python/nuage_wrapper.py");

/// Deletes the blobs no manifest of `index` refers to (images that aged out).
fn remove_unreferenced_blobs(layout: &Path, index: &ImageIndex) -> Result<(), BuilderError> {
    let blobs = layout.join("blobs/sha256");
    let mut referenced = std::collections::HashSet::new();
    for descriptor in index.manifests() {
        let digest = descriptor.digest().digest().to_owned();
        let manifest = oci_spec::image::ImageManifest::from_file(blobs.join(&digest)).map_err(|source| {
            BuilderError::Manifest {
                digest: digest.clone(),
                source,
            }
        })?;
        referenced.insert(digest);
        referenced.insert(manifest.config().digest().digest().to_owned());
        referenced.extend(manifest.layers().iter().map(|layer| layer.digest().digest().to_owned()));
    }
    for entry in std::fs::read_dir(&blobs).map_err(BuilderError::io("listing blobs"))? {
        let entry = entry.map_err(BuilderError::io("listing blobs"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !referenced.contains(&name) && !name.ends_with(".partial") {
            std::fs::remove_file(entry.path()).map_err(|source| BuilderError::RemoveBlob { name, source })?;
        }
    }
    Ok(())
}

/// Serialises layout updates: two builds for one repository must not lose a tag, and pruning
/// must not remove a blob another build just wrote.
static INDEX_LOCK: Mutex<()> = Mutex::new(());

/// What a function image runs on, beneath nuage's wrapper and the tenant's code.
#[derive(Debug)]
pub enum Foundation {
    /// The runner's interpreter (the local runner's host provides it).
    Runner,
    /// A compiled handler that needs nothing beneath it: a static Go binary, or a wasm
    /// component precompiled for the router's Wasmtime engine.
    Compiled(Vec<u8>),
    /// A runtime base image's layers, which hold the interpreter.
    Base(Box<Base>),
}

/// A written image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `<repository>:<tag>`.
    pub reference: String,
    /// `sha256:...` of the manifest.
    pub digest: String,
}

/// What the image runs: the wrapper's files (name, content, mode) and the entrypoint.
type Wrapper = (Vec<(&'static str, Vec<u8>, u32)>, Vec<String>);

/// The wrapper files and entrypoint of a runtime; for Go, `binary` is the compiled handler
/// (already wrapped in its HTTP server).
fn wrapper(runtime: &str, binary: Option<Vec<u8>>) -> Result<Wrapper, BuilderError> {
    if runtime.starts_with("node") {
        Ok((
            vec![("server.js", NODE_WRAPPER.as_bytes().to_vec(), 0o644)],
            vec!["node".to_owned(), format!("/{WRAPPER_DIR}/server.js")],
        ))
    } else if runtime.starts_with("python") {
        Ok((
            vec![("nuage_wrapper.py", PYTHON_WRAPPER.as_bytes().to_vec(), 0o644)],
            vec!["python3".to_owned(), format!("/{WRAPPER_DIR}/nuage_wrapper.py")],
        ))
    } else if let (Some(binary), "wasm") = (&binary, runtime) {
        // Precompiled for the router, which runs it; the entrypoint names it for a reader.
        let name = nuage_core::wasm::COMPONENT_PATH
            .strip_prefix(&format!("{WRAPPER_DIR}/"))
            .expect("the component sits in the wrapper directory");
        Ok((
            vec![(name, binary.clone(), 0o644)],
            vec![format!("/{}", nuage_core::wasm::COMPONENT_PATH)],
        ))
    } else if let Some(binary) = binary {
        Ok((
            vec![("handler", binary, 0o755)],
            vec![format!("/{WRAPPER_DIR}/handler")],
        ))
    } else {
        Err(BuilderError::RuntimeNotBuildable {
            runtime: runtime.to_owned(),
        })
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A gzip-compressed tar layer: the blob, its digest and the digest of the plain tar.
struct Layer {
    blob: Vec<u8>,
    digest: String,
    diff_id: String,
}

fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>) -> std::io::Result<()>) -> Result<Layer, BuilderError> {
    let mut tar = tar::Builder::new(Vec::new());
    build(&mut tar).map_err(BuilderError::io("writing a layer"))?;
    let plain = tar.into_inner().map_err(BuilderError::io("writing a layer"))?;
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    std::io::Write::write_all(&mut gzip, &plain).map_err(BuilderError::io("compressing a layer"))?;
    let blob = gzip.finish().map_err(BuilderError::io("compressing a layer"))?;
    Ok(Layer {
        digest: sha256(&blob),
        diff_id: sha256(&plain),
        blob,
    })
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(mode);
    header.set_entry_type(kind);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_mtime(0);
    header
}

fn add_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
    let mut header = header(data.len() as u64, mode, tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

fn descriptor(media_type: MediaType, size: usize, hex_digest: &str) -> Result<Descriptor, BuilderError> {
    let digest: Digest = Sha256Digest::from_str(hex_digest).map_err(BuilderError::Digest)?.into();
    Ok(Descriptor::new(media_type, size as u64, digest))
}

fn write_blob(layout: &Path, hex_digest: &str, bytes: &[u8]) -> Result<(), BuilderError> {
    let path = layout.join("blobs/sha256").join(hex_digest);
    if path.exists() {
        return Ok(());
    }
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|source| BuilderError::WriteBlob {
            digest: hex_digest.to_owned(),
            source,
        })
}

/// Puts the blobs of `base`'s layers into `layout`: hard links to its cache (copies where the
/// two are on different file systems).
fn link_base_layers(layout: &Path, base: &Base) -> Result<(), BuilderError> {
    for (layer, _) in &base.layers {
        let hex_digest = layer.digest().digest();
        let target = layout.join("blobs/sha256").join(hex_digest);
        if target.exists() {
            continue;
        }
        let source = base.blobs.join(hex_digest);
        let temporary = target.with_extension("partial");
        let _ = std::fs::remove_file(&temporary);
        std::fs::hard_link(&source, &temporary)
            .or_else(|_| std::fs::copy(&source, &temporary).map(drop))
            .and_then(|()| std::fs::rename(&temporary, &target))
            .map_err(|source| BuilderError::WriteBlob {
                digest: hex_digest.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Returns the image layout directory of `repository` under `registry`.
pub fn layout_dir(registry: &Path, repository: &str) -> PathBuf {
    registry.join(repository.replace(':', "_"))
}

/// Writes the image of `entries` for `runtime` and `handler`, on `foundation`, into the layout
/// of `repository` under `registry`, tagged `tag`, keeping the newest `keep` images of the
/// repository (one per deployment of its function: `applications.deployment_history`, so that
/// a rollback finds the image of each deployment the history lists).
pub fn write_image(
    registry: &Path,
    (repository, tag): (&str, &str),
    keep: usize,
    (runtime, handler): (&str, &str),
    entries: &[Entry],
    foundation: Foundation,
) -> Result<Image, BuilderError> {
    let (binary, base) = match foundation {
        Foundation::Runner => (None, None),
        Foundation::Compiled(binary) => (Some(binary), None),
        Foundation::Base(base) => (None, Some(*base)),
    };
    let (files, entrypoint) = wrapper(runtime, binary)?;
    let layers = [wrapper_layer(&files)?, code_layer(entries)?];
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (descriptor, diff_id) in base.iter().flat_map(|base| &base.layers) {
        descriptors.push(descriptor.clone());
        diff_ids.push(diff_id.clone());
    }
    for layer in &layers {
        descriptors.push(descriptor(MediaType::ImageLayerGzip, layer.blob.len(), &layer.digest)?);
        diff_ids.push(format!("sha256:{}", layer.diff_id));
    }
    let config_json = image_config(handler, entrypoint, diff_ids, base.as_ref())?;
    let config_digest = sha256(config_json.as_bytes());
    let manifest_json = image_manifest(config_json.len(), &config_digest, descriptors)?;
    let manifest_digest = sha256(manifest_json.as_bytes());

    let layout = layout_dir(registry, repository);
    // Blobs, index and pruning under one lock: pruning must not see a new image's blobs
    // before its manifest is in the index.
    let _guard = INDEX_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    std::fs::create_dir_all(layout.join("blobs/sha256")).map_err(BuilderError::io("creating the layout"))?;
    if let Some(base) = &base {
        link_base_layers(&layout, base)?;
    }
    for (digest, bytes) in [
        (&layers[0].digest, &layers[0].blob[..]),
        (&layers[1].digest, &layers[1].blob[..]),
        (&config_digest, config_json.as_bytes()),
        (&manifest_digest, manifest_json.as_bytes()),
    ] {
        write_blob(&layout, digest, bytes)?;
    }
    let index = tag_manifest(&layout, (tag, keep), manifest_json.len(), &manifest_digest)?;
    remove_unreferenced_blobs(&layout, &index)?;
    Ok(Image {
        reference: format!("{repository}:{tag}"),
        digest: format!("sha256:{manifest_digest}"),
    })
}

/// Removes the image tagged `tag` from the layout of `repository` under `registry`, and the
/// blobs only it used; a layout left without images goes, and so do its parent directories
/// up to `registry` once empty (a namespace's directory with its last repository). Removing
/// what is not there is not an error.
pub fn remove_image(registry: &Path, repository: &str, tag: &str) -> Result<(), BuilderError> {
    let layout = layout_dir(registry, repository);
    let index_path = layout.join("index.json");
    let _guard = INDEX_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !index_path.exists() {
        return remove_empty_directories(registry, &layout);
    }
    let manifests = manifests_but(&index_path, tag)?;
    if manifests.is_empty() {
        std::fs::remove_dir_all(&layout).map_err(BuilderError::io("removing a layout"))?;
        return remove_empty_directories(registry, &layout);
    }
    let index = write_index(&index_path, manifests)?;
    remove_unreferenced_blobs(&layout, &index)
}

/// Removes `directory` and its parents up to (not including) `registry`, as long as they are
/// empty.
fn remove_empty_directories(registry: &Path, directory: &Path) -> Result<(), BuilderError> {
    let mut current = Some(directory);
    while let Some(path) = current.filter(|path| path.starts_with(registry) && *path != registry) {
        match std::fs::remove_dir(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            // Not empty: something else still lives there.
            Err(error) if error.kind() == std::io::ErrorKind::DirectoryNotEmpty => return Ok(()),
            Err(error) => return Err(BuilderError::io("removing a layout's directory")(error)),
        }
        current = path.parent();
    }
    Ok(())
}

/// Writes the index of `manifests` to `path` whole, or not at all; returns it.
fn write_index(path: &Path, manifests: Vec<Descriptor>) -> Result<ImageIndex, BuilderError> {
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(BuilderError::Metadata)?;
    let temporary = path.with_extension("partial");
    index.to_file(&temporary).map_err(BuilderError::Metadata)?;
    std::fs::rename(&temporary, path).map_err(BuilderError::io("writing the index"))?;
    Ok(index)
}

/// The layer of the runtime's wrapper files, under [`WRAPPER_DIR`].
fn wrapper_layer(files: &[(&str, Vec<u8>, u32)]) -> Result<Layer, BuilderError> {
    layer(|tar| {
        for (name, content, mode) in files {
            add_file(tar, &format!("{WRAPPER_DIR}/{name}"), *mode, content)?;
        }
        Ok(())
    })
}

/// The layer of the tenant's code, under [`CODE_DIR`].
fn code_layer(entries: &[Entry]) -> Result<Layer, BuilderError> {
    layer(|tar| {
        let mut directory = header(0, 0o755, tar::EntryType::Directory);
        tar.append_data(&mut directory, format!("{CODE_DIR}/"), std::io::empty())?;
        for entry in entries {
            let path = format!("{CODE_DIR}/{}", entry.path());
            match entry {
                Entry::File { mode, data, .. } => add_file(tar, &path, *mode, data)?,
                Entry::Directory { .. } => {
                    let mut header = header(0, 0o755, tar::EntryType::Directory);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::Link { target, .. } => {
                    let mut header = header(0, 0o777, tar::EntryType::Symlink);
                    tar.append_link(&mut header, &path, target)?;
                }
            }
        }
        Ok(())
    })
}

/// The image config, as JSON: the entrypoint, the code directory as working directory, the
/// handler and port in the environment (after the base's variables, on a base), user 1000,
/// and the layers' plain digests.
fn image_config(
    handler: &str,
    entrypoint: Vec<String>,
    diff_ids: Vec<String>,
    base: Option<&Base>,
) -> Result<String, BuilderError> {
    let own = vec![
        format!("NUAGE_CODE_DIR=/{CODE_DIR}"),
        format!("NUAGE_HANDLER={handler}"),
        "PORT=8080".to_owned(),
    ];
    let (environment, architecture, os) = match base {
        Some(base) => (
            base.environment(own),
            base.config.architecture().clone(),
            base.config.os().clone(),
        ),
        None => (own, Arch::Amd64, Os::Linux),
    };
    ImageConfigurationBuilder::default()
        .architecture(architecture)
        .os(os)
        .config(
            ConfigBuilder::default()
                .user("1000")
                .env(environment)
                .entrypoint(entrypoint)
                .working_dir(format!("/{CODE_DIR}"))
                .build()
                .map_err(BuilderError::Metadata)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(BuilderError::Metadata)?,
        )
        .build()
        .map_err(BuilderError::Metadata)?
        .to_string()
        .map_err(BuilderError::Metadata)
}

/// The image manifest, as JSON, of a config of `config_size` bytes and `layers`.
fn image_manifest(config_size: usize, config_digest: &str, layers: Vec<Descriptor>) -> Result<String, BuilderError> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config_size, config_digest)?)
        .layers(layers)
        .build()
        .map_err(BuilderError::Metadata)?
        .to_string()
        .map_err(BuilderError::Metadata)
}

/// Returns the manifests the index at `index_path` lists (none when there is no index yet),
/// but the one tagged `tag`.
fn manifests_but(index_path: &Path, tag: &str) -> Result<Vec<Descriptor>, BuilderError> {
    if !index_path.exists() {
        return Ok(Vec::new());
    }
    let mut manifests = ImageIndex::from_file(index_path)
        .map_err(BuilderError::Metadata)?
        .manifests()
        .clone();
    manifests.retain(|existing| {
        existing
            .annotations()
            .as_ref()
            .and_then(|annotations| annotations.get(REF_NAME))
            .is_none_or(|name| name != tag)
    });
    Ok(manifests)
}

/// Tags the manifest `manifest_digest` (of `manifest_size` bytes) `tag` in the index of
/// `layout`, in place of an image tagged so before, keeping the newest `keep`; returns the
/// index written.
fn tag_manifest(
    layout: &Path,
    (tag, keep): (&str, usize),
    manifest_size: usize,
    manifest_digest: &str,
) -> Result<ImageIndex, BuilderError> {
    OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(BuilderError::Metadata)?
        .to_file(layout.join("oci-layout"))
        .map_err(BuilderError::Metadata)?;
    let index_path = layout.join("index.json");
    let mut manifests = manifests_but(&index_path, tag)?;
    let mut tagged = descriptor(MediaType::ImageManifest, manifest_size, manifest_digest)?;
    tagged.set_annotations(Some(HashMap::from([(REF_NAME.to_owned(), tag.to_owned())])));
    manifests.push(tagged);
    // Keep the newest images only: the current deployment's and a few before it (rollbacks).
    let keep = keep.max(1);
    if manifests.len() > keep {
        manifests.drain(..manifests.len() - keep);
    }
    write_index(&index_path, manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Vec<Entry> {
        vec![Entry::File {
            path: "handler.js".to_owned(),
            mode: 0o644,
            data: format!("exports.handle = () => '{text}';").into_bytes(),
        }]
    }

    fn write(registry: &Path, repository: &str, tag: &str) {
        write_image(
            registry,
            (repository, tag),
            5,
            ("node22", "handler.handle"),
            &code(tag),
            Foundation::Runner,
        )
        .unwrap();
    }

    fn files(directory: &Path) -> usize {
        std::fs::read_dir(directory).map_or(0, |entries| entries.count())
    }

    #[test]
    fn only_the_newest_images_are_kept_with_their_blobs() {
        let registry = tempfile::tempdir().unwrap();
        let registry = registry.path();
        let first = write_image(
            registry,
            ("space/f", "one"),
            2,
            ("node22", "handler.handle"),
            &code("one"),
            Foundation::Runner,
        )
        .unwrap();
        for tag in ["two", "three"] {
            write_image(
                registry,
                ("space/f", tag),
                2,
                ("node22", "handler.handle"),
                &code(tag),
                Foundation::Runner,
            )
            .unwrap();
        }
        let layout = layout_dir(registry, "space/f");
        let index = ImageIndex::from_file(layout.join("index.json")).unwrap();
        assert_eq!(index.manifests().len(), 2);
        let pruned = first.digest.trim_start_matches("sha256:");
        assert!(
            !layout.join("blobs/sha256").join(pruned).exists(),
            "the oldest image's manifest goes"
        );
    }

    #[test]
    fn removing_images_takes_their_blobs_then_the_layout_then_the_namespace_directory() {
        let registry = tempfile::tempdir().unwrap();
        let registry = registry.path();
        let (first, second, other) = ("space/first", "space/second", "other/first");
        write(registry, first, "one");
        write(registry, first, "two");
        write(registry, second, "one");
        write(registry, other, "one");
        let blobs = layout_dir(registry, first).join("blobs/sha256");
        let before = files(&blobs);

        // One of two images: the other one, and the blobs it uses, stay.
        remove_image(registry, first, "one").unwrap();
        let index = ImageIndex::from_file(layout_dir(registry, first).join("index.json")).unwrap();
        assert_eq!(index.manifests().len(), 1);
        assert!(files(&blobs) < before, "the removed image's own blobs go");
        // Removing it again, or a tag that never was, changes nothing.
        remove_image(registry, first, "one").unwrap();
        remove_image(registry, first, "never").unwrap();
        assert_eq!(
            ImageIndex::from_file(layout_dir(registry, first).join("index.json"))
                .unwrap()
                .manifests()
                .len(),
            1
        );

        // The last image of a repository takes its layout; the namespace's directory stays
        // while another repository lives in it.
        remove_image(registry, first, "two").unwrap();
        assert!(!layout_dir(registry, first).exists());
        assert!(layout_dir(registry, second).join("index.json").is_file());
        remove_image(registry, second, "one").unwrap();
        assert!(!registry.join("space").exists(), "the emptied namespace directory goes");
        // Other namespaces, and the registry itself, stay.
        assert!(layout_dir(registry, other).join("index.json").is_file());
        remove_image(registry, other, "one").unwrap();
        assert!(registry.is_dir());
        assert_eq!(files(registry), 0);
    }
}
