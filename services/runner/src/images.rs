//! Images instances run: found in the builder's OCI image layouts or pulled from a registry,
//! then unpacked once per manifest into a root directory (a copy), which is removed once
//! neither a version the runner keeps nor a live instance uses it. A version's image is pinned
//! when it is deployed ([`Images::pin`]): a tag pushed again later names another manifest, so
//! another copy, and the version's instances keep running the one it was deployed with.

use crate::confined::{self, RemoveError};
use crate::error::RunnerError;
use crate::registries::Registries;
use flate2::read::GzDecoder;
pub(crate) use oci_client::secrets::RegistryAuth;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The annotation that names a tag in an image layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An unpacked image: its root and what its config says to run. Whoever holds one uses its
/// copy: an instance holds its image until its last process is gone, and a copy is removed
/// only while the cache alone holds it (see [`Images::release`]).
#[derive(Debug)]
pub struct Unpacked {
    /// The image's root file system.
    pub root: PathBuf,
    /// Entrypoint followed by cmd.
    pub command: Vec<String>,
    /// How many words of `command` are the entrypoint.
    pub entrypoint_length: usize,
    /// `KEY=value` pairs of the config.
    pub environment: Vec<(String, String)>,
    /// The working directory inside the image (`/` when unset).
    pub working_dir: String,
    /// The user and group to run as (1000 when the image names none or a name).
    pub user: (u32, u32),
}

impl Unpacked {
    /// Returns what an instance of `spec` runs: the image's entrypoint and cmd, where the
    /// spec's `command` replaces the entrypoint (and, as in Kubernetes, drops the cmd) and its
    /// `args` replace the cmd.
    pub fn command_for(&self, spec: &nuage_proto::runner::v1::Spec) -> Vec<String> {
        let entrypoint = if spec.command.is_empty() {
            if spec.args.is_empty() {
                return self.command.clone();
            }
            &self.command[..self.entrypoint_length.min(self.command.len())]
        } else {
            spec.command.as_slice()
        };
        entrypoint.iter().chain(&spec.args).cloned().collect()
    }
}

/// Finds, fetches and unpacks images; each manifest is unpacked once, into
/// `<work_dir>/images/<digest>`, and removed once unused.
#[derive(Debug)]
pub struct Images {
    work_dir: PathBuf,
    registry_dir: PathBuf,
    /// The host of the installation's own registry: only its images (and those named without
    /// a host) are read from `registry_dir`.
    registry_host: Option<String>,
    /// The registries images are pulled from.
    registries: Registries,
    /// How long a registry may keep a pull waiting.
    registry_timeout: std::time::Duration,
    /// The copies unpacked, by image reference. Its lock is held through every unpack and
    /// every choice of what to remove, so the two never race.
    unpacked: Mutex<HashMap<String, Arc<Unpacked>>>,
}

impl Images {
    /// Unpacks under `<work_dir>/images`, reading layouts under `registry_dir`, pulling
    /// others (over plain HTTP when `insecure`) with `registry_timeout`, from any registry
    /// with public addresses.
    pub fn new(
        work_dir: PathBuf,
        registry_dir: PathBuf,
        insecure: bool,
        registry_timeout: std::time::Duration,
    ) -> Self {
        Self {
            work_dir,
            registry_dir,
            registry_host: None,
            registries: Registries {
                insecure,
                ..Registries::default()
            },
            registry_timeout,
            unpacked: Mutex::new(HashMap::new()),
        }
    }

    /// Reads images of `host` (the installation's own registry) from the layouts too.
    pub fn with_registry_host(mut self, host: Option<String>) -> Self {
        self.registry_host = host;
        self
    }

    /// Pulls from `own` (the installation's registry, when there is one) and from `listed`
    /// too, whatever their addresses.
    pub(crate) fn with_registries(mut self, own: Option<String>, listed: Vec<String>) -> Self {
        self.registries.own = own;
        self.registries.listed = listed;
        self
    }

    /// Returns `reference` pinned to the manifest it names now, `[host/]repository@digest`,
    /// found as [`Self::get`] finds images. A reference by digest is checked too: its manifest
    /// must still be there (a rollback to an image that was pruned fails here, not when its
    /// instance starts). A registry is asked as `auth` says.
    pub async fn pin(&self, reference: &str, auth: &RegistryAuth) -> Result<String, RunnerError> {
        let (repository, version) = split_reference(reference);
        let digest = match self.layout_of(reference)? {
            Some(layout) => {
                let tag = version.to_owned();
                tokio::task::spawn_blocking(move || manifest_digest(&layout, &tag))
                    .await
                    .map_err(|source| unpack_task(reference, source))??
            }
            None => {
                let parsed = parse_reference(reference)?;
                self.registries
                    .client(parsed.registry(), self.registry_timeout)
                    .await?
                    .fetch_manifest_digest(&parsed, auth)
                    .await
                    .map_err(|source| RunnerError::Pull {
                        reference: reference.to_owned(),
                        source: Box::new(source),
                    })?
            }
        };
        Ok(format!("{repository}@{digest}"))
    }

    /// Returns the unpacked image `reference` (`[host/]repository:tag` or
    /// `[host/]repository@digest`), pulled (when no layout holds it) as `auth` says.
    pub async fn get(&self, reference: &str, auth: &RegistryAuth) -> Result<Arc<Unpacked>, RunnerError> {
        // One unpack at a time: two instances of a new version must not unpack it twice.
        let mut unpacked = self.unpacked.lock().await;
        if let Some(image) = unpacked.get(reference) {
            return Ok(image.clone());
        }
        let work_dir = self.work_dir.clone();
        let image = match self.layout_of(reference)? {
            Some(layout) => {
                let tag = split_reference(reference).1.to_owned();
                tokio::task::spawn_blocking(move || unpack_layout(&layout, &tag, &work_dir))
                    .await
                    .map_err(|source| unpack_task(reference, source))??
            }
            None => self.pull(reference, auth).await?,
        };
        let image = Arc::new(image);
        unpacked.insert(reference.to_owned(), image.clone());
        Ok(image)
    }

    /// Returns the layout holding `reference`'s repository, or none when it is pulled from
    /// the registry it names; refuses a reference that names no registry and no layout.
    fn layout_of(&self, reference: &str) -> Result<Option<PathBuf>, RunnerError> {
        let repository = split_reference(reference).0;
        match local_layout(&self.registry_dir, self.registry_host.as_deref(), repository) {
            None if !names_registry(repository) => Err(RunnerError::UnknownImage {
                reference: reference.to_owned(),
                layouts: self.registry_dir.clone(),
            }),
            layout => Ok(layout),
        }
    }

    /// Removes the copies nothing uses: neither an image of `current` (the references of the
    /// versions the runner keeps) nor a live instance. A copy of the cache is unused when the
    /// cache alone holds it; a copy the cache does not know (left from before a restart, or
    /// by an unpack that crashed) goes unless a reference of `current` names it through an
    /// image layout (a pulled image's is not known without its registry: it is pulled and
    /// unpacked again when next started). Chosen under the unpack lock, so never while the
    /// same image is being unpacked; removed after it, so starts do not wait on a removal.
    /// Returns the copies removed.
    pub async fn release(&self, current: HashSet<String>) -> Vec<PathBuf> {
        let mut unpacked = self.unpacked.lock().await;
        let mut kept = HashSet::new();
        unpacked.retain(|reference, image| {
            // Clones are made under the lock only: a count of one stays one until it is released.
            let used = current.contains(reference) || Arc::strong_count(image) > 1;
            if used && let Some(name) = image.root.parent().and_then(Path::file_name) {
                kept.insert(name.to_owned());
            }
            used
        });
        let uncached: Vec<String> = current
            .into_iter()
            .filter(|reference| !unpacked.contains_key(reference))
            .collect();
        let (images, registry_dir) = (
            self.work_dir.join("images"),
            (self.registry_dir.clone(), self.registry_host.clone()),
        );
        let unused =
            tokio::task::spawn_blocking(move || set_aside_unused(&images, &registry_dir, kept, &uncached)).await;
        drop(unpacked);
        let unused = unused.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot look for unused image copies");
            Vec::new()
        });
        let removed = unused.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (copy, trash) in unused {
                if let Err(error) = std::fs::remove_dir_all(&trash) {
                    tracing::warn!(copy = %copy.display(), %error, "cannot remove an unused image copy");
                }
            }
        })
        .await;
        removed.into_iter().map(|(copy, _)| copy).collect()
    }

    async fn pull(&self, reference: &str, auth: &RegistryAuth) -> Result<Unpacked, RunnerError> {
        let parsed = parse_reference(reference)?;
        let client = self.registries.client(parsed.registry(), self.registry_timeout).await?;
        let image = client
            .pull(
                &parsed,
                auth,
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

/// The suffix of a copy set aside to be removed.
const SET_ASIDE: &str = ".removing-";

/// Renames every directory of `images` but those named in `kept` or by a layout image of
/// `uncached` out of the way (a copy set aside earlier is taken as it is); returns each with
/// the name it now has.
fn set_aside_unused(
    images: &Path,
    (registry_dir, registry_host): &(PathBuf, Option<String>),
    mut kept: HashSet<std::ffi::OsString>,
    uncached: &[String],
) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(images) else {
        return Vec::new();
    };
    let candidates: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()) && !kept.contains(&entry.file_name()))
        .map(|entry| entry.path())
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    kept.extend(
        uncached
            .iter()
            .filter_map(|reference| layout_copy_name(registry_dir, registry_host.as_deref(), reference))
            .map(std::ffi::OsString::from),
    );
    let mut unused = Vec::new();
    for copy in candidates {
        let Some(name) = copy.file_name().map(|name| name.to_string_lossy().into_owned()) else {
            continue;
        };
        if kept.contains(std::ffi::OsStr::new(&name)) {
            continue;
        }
        if name.contains(SET_ASIDE) {
            unused.push((copy.clone(), copy));
            continue;
        }
        let trash = copy.with_file_name(format!("{name}{SET_ASIDE}{}", uuid::Uuid::new_v4().simple()));
        match std::fs::rename(&copy, &trash) {
            Ok(()) => unused.push((copy, trash)),
            Err(error) => tracing::warn!(copy = %copy.display(), %error, "cannot set an unused image copy aside"),
        }
    }
    unused
}

/// Returns the layout holding `repository`, when the builder wrote one under `registry_dir`:
/// for a repository named without a host, or on `registry_host`, the installation's own
/// registry. An image of any other host is that host's, whatever layout has the same path (a
/// tenant naming `elsewhere.example/<another's repository>` gets a pull from there).
fn local_layout(registry_dir: &Path, registry_host: Option<&str>, repository: &str) -> Option<PathBuf> {
    let candidates = match nuage_core::ids::repository_host(repository) {
        (None, _) => [Some(repository), None],
        // `host/path` of the installation's own registry: the layout is under `path`.
        (Some(host), path) if registry_host.is_some_and(|own| nuage_core::ids::same_registry(own, host)) => {
            [Some(repository), Some(path)]
        }
        (Some(_), _) => [None, None],
    };
    candidates
        .into_iter()
        .flatten()
        .map(|path| registry_dir.join(path.replace(':', "_")))
        .find(|layout| layout.join("index.json").is_file())
}

/// Returns the name of the copy `reference` unpacks to, when a layout under `registry_dir`
/// holds it.
fn layout_copy_name(registry_dir: &Path, registry_host: Option<&str>, reference: &str) -> Option<String> {
    let (repository, tag) = split_reference(reference);
    let layout = local_layout(registry_dir, registry_host, repository)?;
    let digest = manifest_digest(&layout, tag).ok()?;
    Some(copy_name(&digest))
}

/// The directory name of the copy of the image whose manifest is `digest`.
fn copy_name(digest: &str) -> String {
    digest.replace(':', "-")
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

pub(crate) fn parse_reference(reference: &str) -> Result<oci_client::Reference, RunnerError> {
    reference.parse().map_err(|source| RunnerError::Reference {
        reference: reference.to_owned(),
        source,
    })
}

/// Splits `[host/]repository:tag` or `[host/]repository@digest` into the repository and the
/// tag or digest.
pub(crate) fn split_reference(reference: &str) -> (&str, &str) {
    if let Some(pinned) = reference.split_once('@') {
        return pinned;
    }
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

/// Whether the version of a reference (what follows its repository) is a digest, not a tag
/// (a tag has no `:`).
fn is_digest(version: &str) -> bool {
    version.contains(':')
}

/// Returns the digest of the manifest `tag` names in `layout` (its newest, when retagged); a
/// digest names itself.
fn manifest_digest(layout: &Path, tag: &str) -> Result<String, RunnerError> {
    if is_digest(tag) {
        // Kept by digest once retagged, until pruned with its blobs.
        let blob = layout.join("blobs/sha256").join(tag.trim_start_matches("sha256:"));
        if !blob.is_file() {
            return Err(RunnerError::Pruned {
                tag: tag.to_owned(),
                layout: layout.to_path_buf(),
            });
        }
        return Ok(tag.to_owned());
    }
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
    Ok(descriptor.digest().to_string())
}

fn unpack_layout(layout: &Path, tag: &str, work_dir: &Path) -> Result<Unpacked, RunnerError> {
    let manifest_digest = manifest_digest(layout, tag)?;
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
    let name = copy_name(digest);
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
    let entrypoint_length = command.len();
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
        entrypoint_length,
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

    /// Writes a one-layer image (a file `server` holding `content`) tagged `tag` into the
    /// layout at `layout`, as the only image of its index.
    fn write_layout(layout: &Path, tag: &str, content: &[u8]) {
        use sha2::Digest;
        let sha = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, "server", content).unwrap();
        let layer = tar.into_inner().unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/server"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&layer))]},
        })
        .to_string();
        let descriptor = |media: &str, blob: &[u8]| serde_json::json!({"mediaType": media, "size": blob.len(), "digest": format!("sha256:{}", sha(blob))});
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config.as_bytes()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        })
        .to_string();
        let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", manifest.as_bytes());
        entry["annotations"] = serde_json::json!({REF_NAME: tag});
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        for blob in [&layer[..], config.as_bytes(), manifest.as_bytes()] {
            std::fs::write(layout.join("blobs/sha256").join(sha(blob)), blob).unwrap();
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releases_racing_starts_of_the_same_image_never_remove_a_copy_in_use() {
        let top = tempfile::tempdir().unwrap();
        let (work_dir, registry_dir) = (top.path().join("work"), top.path().join("registry"));
        write_layout(&registry_dir.join("ns/app"), "v1", b"#!");
        let timeout = std::time::Duration::from_secs(5);
        let images = Arc::new(Images::new(work_dir.clone(), registry_dir.clone(), false, timeout));
        let reference = "ns/app:v1";
        let mut removed = 0;
        // A hundred rounds, and more until a release won the race at least once: which wins
        // is up to the scheduler.
        let mut rounds = 0;
        while rounds < 100 || (removed == 0 && rounds < 10_000) {
            rounds += 1;
            let release = tokio::spawn({
                let images = images.clone();
                async move { images.release(HashSet::new()).await.len() }
            });
            // Held (as an instance holds it), the copy stays whole whatever the release does.
            let image = images.get(reference, &RegistryAuth::Anonymous).await.unwrap();
            tokio::task::yield_now().await;
            assert!(image.root.join("server").is_file());
            removed += release.await.unwrap();
            assert!(image.root.join("server").is_file());
        }
        assert!(removed > 0, "the releases removed copies no one held");
        // Unused and not current: it goes, and a start unpacks it again.
        assert_eq!(images.release(HashSet::new()).await.len(), 1);
        assert_eq!(std::fs::read_dir(work_dir.join("images")).unwrap().count(), 0);
        drop(images.get(reference, &RegistryAuth::Anonymous).await.unwrap());
        // After a restart (nothing cached), a current version's copy stays, and another goes.
        let restarted = Images::new(work_dir.clone(), registry_dir, false, timeout);
        let stale = work_dir.join("images/sha256-stale.partial");
        std::fs::create_dir_all(&stale).unwrap();
        let current = HashSet::from([reference.to_owned()]);
        assert_eq!(restarted.release(current).await, [stale]);
        assert!(
            restarted
                .get(reference, &RegistryAuth::Anonymous)
                .await
                .unwrap()
                .root
                .join("server")
                .is_file()
        );
        assert_eq!(std::fs::read_dir(work_dir.join("images")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_tag_pushed_again_is_pinned_to_its_new_image_and_the_old_pin_keeps_its_own() {
        let top = tempfile::tempdir().unwrap();
        let (work_dir, registry_dir) = (top.path().join("work"), top.path().join("registry"));
        let images = Images::new(work_dir, registry_dir.clone(), false, std::time::Duration::from_secs(5));
        let layout = registry_dir.join("ns/app");
        write_layout(&layout, "latest", b"v1");
        let first = images.pin("ns/app:latest", &RegistryAuth::Anonymous).await.unwrap();
        assert!(first.starts_with("ns/app@sha256:"), "{first}");
        assert_eq!(images.pin(&first, &RegistryAuth::Anonymous).await.unwrap(), first);
        let v1 = images.get(&first, &RegistryAuth::Anonymous).await.unwrap();
        write_layout(&layout, "latest", b"v2");
        let second = images.pin("ns/app:latest", &RegistryAuth::Anonymous).await.unwrap();
        assert_ne!(second, first);
        let v2 = images.get(&second, &RegistryAuth::Anonymous).await.unwrap();
        assert_eq!(std::fs::read(v2.root.join("server")).unwrap(), b"v2");
        assert_eq!(std::fs::read(v1.root.join("server")).unwrap(), b"v1");
        // The first copy goes once nothing holds it and the second is current.
        drop(v1);
        let removed = images.release(HashSet::from([second])).await;
        assert_eq!(
            removed,
            [v2.root
                .parent()
                .unwrap()
                .with_file_name(copy_name(first.split_once('@').unwrap().1))]
        );
        assert!(v2.root.join("server").is_file());
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
        assert_eq!(
            split_reference("127.0.0.1:5000/ns/f@sha256:0123"),
            ("127.0.0.1:5000/ns/f", "sha256:0123")
        );
        assert!(names_registry("127.0.0.1:5000/ns/f"));
        assert!(names_registry("registry.example.com/ns/f"));
        assert!(!names_registry("ns/f"));
        assert_eq!(parse_user("1000"), (1000, 1000));
        assert_eq!(parse_user("33:44"), (33, 44));
        assert_eq!(parse_user("www"), (1000, 1000));
    }
}
