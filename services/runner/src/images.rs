//! Images instances run: found in the builder's OCI image layouts or pulled from a registry,
//! then unpacked once per manifest into a root directory.

use crate::confined::{self, RemoveError};
use crate::error::RunnerError;
use flate2::read::GzDecoder;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The annotation that names a tag in an image layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An unpacked image: its root and what its config says to run.
#[derive(Debug)]
pub struct Unpacked {
    /// The image's root file system.
    pub root: PathBuf,
    /// Entrypoint followed by cmd.
    pub command: Vec<String>,
    /// `KEY=value` pairs of the config.
    pub environment: Vec<(String, String)>,
    /// The working directory inside the image (`/` when unset).
    pub working_dir: String,
    /// The user and group to run as (1000 when the image names none or a name).
    pub user: (u32, u32),
}

/// Finds, fetches and unpacks images; each manifest is unpacked once.
#[derive(Debug)]
pub struct Images {
    work_dir: PathBuf,
    registry_dir: PathBuf,
    insecure: bool,
    /// How long a registry may keep a pull waiting.
    registry_timeout: std::time::Duration,
    unpacked: Mutex<HashMap<String, Arc<Unpacked>>>,
}

impl Images {
    /// Unpacks under `<work_dir>/images`, reading layouts under `registry_dir`, pulling
    /// others (over plain HTTP when `insecure`) with `registry_timeout`.
    pub fn new(
        work_dir: PathBuf,
        registry_dir: PathBuf,
        insecure: bool,
        registry_timeout: std::time::Duration,
    ) -> Self {
        Self {
            work_dir,
            registry_dir,
            insecure,
            registry_timeout,
            unpacked: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the unpacked image `reference` (`[host/]repository:tag`).
    pub async fn get(&self, reference: &str) -> Result<Arc<Unpacked>, RunnerError> {
        // One unpack at a time: two instances of a new version must not unpack it twice.
        let mut unpacked = self.unpacked.lock().await;
        if let Some(image) = unpacked.get(reference) {
            return Ok(image.clone());
        }
        let (repository, tag) = split_reference(reference);
        let layout = self.local_layout(repository);
        let work_dir = self.work_dir.clone();
        let image = match layout {
            Some(layout) => {
                let tag = tag.to_owned();
                tokio::task::spawn_blocking(move || unpack_layout(&layout, &tag, &work_dir))
                    .await
                    .map_err(|source| unpack_task(reference, source))??
            }
            None if !names_registry(repository) => {
                return Err(RunnerError::UnknownImage {
                    reference: reference.to_owned(),
                    layouts: self.registry_dir.clone(),
                });
            }
            None => self.pull(reference).await?,
        };
        let image = Arc::new(image);
        unpacked.insert(reference.to_owned(), image.clone());
        Ok(image)
    }

    /// Returns the layout holding `repository`, when the builder wrote one here.
    fn local_layout(&self, repository: &str) -> Option<PathBuf> {
        let candidates = [
            Some(repository),
            // `host/path` of the installation's own registry: the layout is under `path`.
            repository.split_once('/').map(|(_, path)| path),
        ];
        candidates
            .into_iter()
            .flatten()
            .map(|path| self.registry_dir.join(path.replace(':', "_")))
            .find(|layout| layout.join("index.json").is_file())
    }

    async fn pull(&self, reference: &str) -> Result<Unpacked, RunnerError> {
        let parsed: oci_client::Reference = reference.parse().map_err(|source| RunnerError::Reference {
            reference: reference.to_owned(),
            source,
        })?;
        let client = nuage_clients::registry::client(self.insecure, self.registry_timeout);
        let image = client
            .pull(
                &parsed,
                &oci_client::secrets::RegistryAuth::Anonymous,
                vec![
                    oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE,
                ],
            )
            .await
            .map_err(|source| RunnerError::Pull {
                reference: reference.to_owned(),
                source: Box::new(source),
            })?;
        let digest = image
            .digest
            .clone()
            .unwrap_or_else(|| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&image.config.data)));
        let work_dir = self.work_dir.clone();
        tokio::task::spawn_blocking(move || {
            let config = ImageConfiguration::from_reader(&image.config.data[..]).map_err(invalid("config"))?;
            let layers: Vec<(bool, Vec<u8>)> = image
                .layers
                .into_iter()
                .map(|layer| (layer.media_type.contains("gzip"), layer.data.to_vec()))
                .collect();
            unpack(
                &work_dir,
                &digest,
                &config,
                layers.iter().map(|(gz, data)| (*gz, &data[..])),
            )
        })
        .await
        .map_err(|source| unpack_task(reference, source))?
    }
}

fn unpack_task(reference: &str, source: tokio::task::JoinError) -> RunnerError {
    RunnerError::UnpackTask {
        reference: reference.to_owned(),
        source,
    }
}

/// Returns what makes a parse error of the image's `what` (manifest, config) a failure.
fn invalid(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> RunnerError {
    move |source| RunnerError::Invalid { what, source }
}

/// Whether the first part of `repository` is a registry host (`host.name`, `host:port`,
/// `localhost`), as distribution references tell them apart.
fn names_registry(repository: &str) -> bool {
    repository
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// Splits `[host/]repository:tag` (a digest is not supported here).
fn split_reference(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(colon) => (&reference[..slash + colon], &reference[slash + colon + 1..]),
        None => (reference, "latest"),
    }
}

fn blob(layout: &Path, digest: &str) -> Result<Vec<u8>, RunnerError> {
    let (_, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    std::fs::read(layout.join("blobs/sha256").join(hex)).map_err(|source| RunnerError::Blob {
        digest: digest.to_owned(),
        source,
    })
}

fn unpack_layout(layout: &Path, tag: &str, work_dir: &Path) -> Result<Unpacked, RunnerError> {
    let index = ImageIndex::from_file(layout.join("index.json")).map_err(|source| RunnerError::Index {
        layout: layout.to_path_buf(),
        source,
    })?;
    let descriptor = index
        .manifests()
        .iter()
        .rev()
        .find(|manifest| {
            manifest
                .annotations()
                .as_ref()
                .and_then(|annotations| annotations.get(REF_NAME))
                .is_some_and(|name| name == tag)
        })
        .ok_or_else(|| RunnerError::Pruned {
            tag: tag.to_owned(),
            layout: layout.to_path_buf(),
        })?;
    let manifest_digest = descriptor.digest().to_string();
    let manifest = ImageManifest::from_reader(&blob(layout, &manifest_digest)?[..]).map_err(invalid("manifest"))?;
    let config = ImageConfiguration::from_reader(&blob(layout, manifest.config().digest().as_ref())?[..])
        .map_err(invalid("config"))?;
    let layers = manifest
        .layers()
        .iter()
        .map(|layer| {
            Ok((
                layer.media_type().to_string().contains("gzip"),
                blob(layout, layer.digest().as_ref())?,
            ))
        })
        .collect::<Result<Vec<_>, RunnerError>>()?;
    unpack(
        work_dir,
        &manifest_digest,
        &config,
        layers.iter().map(|(gz, data)| (*gz, &data[..])),
    )
}

/// Unpacks `layers` in order into `<work_dir>/images/<digest>/rootfs` (once: an existing
/// root is reused).
fn unpack<'a>(
    work_dir: &Path,
    digest: &str,
    config: &ImageConfiguration,
    layers: impl Iterator<Item = (bool, &'a [u8])>,
) -> Result<Unpacked, RunnerError> {
    let name = digest.replace(':', "-");
    let directory = work_dir.join("images").join(&name);
    let root = directory.join("rootfs");
    if !root.is_dir() {
        let staging = work_dir.join("images").join(format!("{name}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(staging.join("rootfs")).map_err(|source| RunnerError::Create {
            path: staging.clone(),
            source,
        })?;
        for (gzipped, data) in layers {
            let reader: Box<dyn Read> = if gzipped {
                Box::new(GzDecoder::new(data))
            } else {
                Box::new(data)
            };
            apply_layer(reader, &staging.join("rootfs"))?;
        }
        std::fs::rename(&staging, &directory).map_err(RunnerError::KeepImage)?;
    }
    let image_config = config.config().clone().unwrap_or_default();
    let mut command = image_config.entrypoint().clone().unwrap_or_default();
    command.extend(image_config.cmd().clone().unwrap_or_default());
    if command.is_empty() {
        return Err(RunnerError::NoCommand);
    }
    let environment = image_config
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    Ok(Unpacked {
        root,
        command,
        environment,
        working_dir: image_config.working_dir().clone().unwrap_or_else(|| "/".to_owned()),
        user: parse_user(image_config.user().as_deref().unwrap_or("")),
    })
}

/// Applies one layer: whiteouts remove what lower layers put there. Nothing is ever written or
/// removed outside `root`, whatever links the layers hold: whiteouts are resolved by the kernel
/// confined beneath it, and tar's `unpack_in` refuses to write where a link leads outside.
fn apply_layer(reader: impl Read, root: &Path) -> Result<(), RunnerError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(RunnerError::Layer)?;
    for entry in entries {
        let mut entry = entry.map_err(RunnerError::Layer)?;
        let path = entry.path().map_err(RunnerError::Layer)?.into_owned();
        if let Some(name) = path.file_name().and_then(|name| name.to_str())
            && let Some(hidden) = name.strip_prefix(".wh.")
        {
            apply_whiteout(root, &path, hidden)?;
            continue;
        }
        if let Err(source) = entry.unpack_in(root) {
            return Err(RunnerError::LayerEntry { path, source });
        }
    }
    Ok(())
}

/// Removes what the whiteout entry `path` hides (`hidden`, next to it), or refuses the image
/// when the entry leads outside its root.
fn apply_whiteout(root: &Path, path: &Path, hidden: &str) -> Result<(), RunnerError> {
    // An opaque directory marker (`.wh..wh..opq`) names no entry to remove: lower layers'
    // contents of its directory are kept.
    if hidden == ".wh..opq" {
        return Ok(());
    }
    confined::remove_beneath(root, &path.with_file_name(hidden)).map_err(|error| {
        let path = path.to_path_buf();
        match error {
            RemoveError::Outside => RunnerError::WhiteoutOutside { path },
            RemoveError::Io(source) => RunnerError::Whiteout { path, source },
        }
    })
}

/// `uid[:gid]`; names cannot be looked up without the image's /etc/passwd: 1000.
fn parse_user(user: &str) -> (u32, u32) {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid = uid.parse().unwrap_or(1000);
    (uid, gid.parse().unwrap_or(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar layer of `entries`: (path, `Some(target)` for a link or `None` for an empty file).
    /// Names are written as they are, `..` included, as a hostile layer would hold them.
    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, target) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o644);
            header.set_size(0);
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(target) = target {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
            } else {
                header.set_entry_type(tar::EntryType::Regular);
            }
            header.set_cksum();
            tar.append(&header, std::io::empty()).unwrap();
        }
        tar.into_inner().unwrap()
    }

    /// The chain of the attack: each link alone stays inside; `u1` is the root's parent, and
    /// `u<n>` is `n` levels above the root.
    const CHAIN: [(&str, Option<&str>); 5] = [
        ("a/l", Some("..")),
        ("u1", Some("a/l/..")),
        ("u2", Some("u1/..")),
        ("u3", Some("u2/..")),
        ("u4", Some("u3/..")),
    ];

    /// Returns a temporary directory with a victim file and a root four levels below it.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        std::fs::write(top.path().join("victim"), "keep me").unwrap();
        std::fs::create_dir_all(top.path().join("victims/inside")).unwrap();
        let root = top.path().join("1/2/3/rootfs");
        std::fs::create_dir_all(&root).unwrap();
        (top, root)
    }

    #[test]
    fn whiteouts_through_chained_links_are_refused_and_remove_nothing() {
        let (top, root) = setup();
        let mut entries = CHAIN.to_vec();
        entries.push(("u4/.wh.victim", None));
        let refused = apply_layer(&layer(&entries)[..], &root).unwrap_err().to_string();
        assert!(refused.contains("`u4/.wh.victim`"), "{refused}");
        assert!(top.path().join("victim").exists());
        for escape in ["a/l/../.wh.victim", "u1/.wh.rootfs", "../.wh.victim"] {
            let refused = apply_layer(&layer(&[(escape, None)])[..], &root)
                .unwrap_err()
                .to_string();
            assert!(refused.contains(escape), "{refused}");
        }
        assert!(root.is_dir());
        // A directory whiteout through the chain: the directory stays.
        let mut entries = CHAIN.to_vec();
        entries.push(("u4/.wh.victims", None));
        assert!(apply_layer(&layer(&entries)[..], &root).is_err());
        assert!(top.path().join("victims/inside").is_dir());
    }

    #[test]
    fn regular_entries_are_not_written_through_links_out_of_the_root() {
        let (top, root) = setup();
        let mut entries = CHAIN.to_vec();
        entries.push(("u4/planted", None));
        let refused = apply_layer(&layer(&entries)[..], &root).unwrap_err().to_string();
        assert!(refused.contains("`u4/planted`"), "{refused}");
        assert!(!top.path().join("planted").exists());
        // Over an existing link, a file replaces the link instead of writing through it.
        apply_layer(
            &layer(&[("victim-link", Some("../../../../victim")), ("victim-link", None)])[..],
            &root,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(top.path().join("victim")).unwrap(), "keep me");
    }

    #[test]
    fn whiteouts_inside_the_root_remove_files_and_trees_without_following_links() {
        let (top, root) = setup();
        let lower = layer(&[
            ("etc/file", None),
            ("tree/sub/file", None),
            ("tree/out", Some("../../../../victims")),
            ("tree/sub/up", Some("../../../../..")),
        ]);
        apply_layer(&lower[..], &root).unwrap();
        let upper = layer(&[("etc/.wh.file", None), (".wh.tree", None), ("gone/.wh.nothing", None)]);
        apply_layer(&upper[..], &root).unwrap();
        assert!(!root.join("etc/file").exists());
        assert!(root.join("etc").is_dir());
        assert!(!root.join("tree").exists());
        assert!(top.path().join("victims/inside").is_dir());
        assert!(top.path().join("victim").exists());
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("ns/f:abc"), ("ns/f", "abc"));
        assert_eq!(
            split_reference("127.0.0.1:5000/ns/f:abc"),
            ("127.0.0.1:5000/ns/f", "abc")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/ns/f"),
            ("127.0.0.1:5000/ns/f", "latest")
        );
        assert!(names_registry("127.0.0.1:5000/ns/f"));
        assert!(names_registry("registry.example.com/ns/f"));
        assert!(!names_registry("ns/f"));
        assert_eq!(parse_user("1000"), (1000, 1000));
        assert_eq!(parse_user("33:44"), (33, 44));
        assert_eq!(parse_user("www"), (1000, 1000));
    }
}
