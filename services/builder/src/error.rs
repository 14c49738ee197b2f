//! Why a build failed. The message of each failure is what the function's `error_message` and
//! the build's log say, so it names the rule or the step and stays readable by the tenant.

use nuage_core::ErrorCode;
use std::io;
use thiserror::Error;

/// A build that did not produce an image.
#[derive(Debug, Error)]
pub enum BuilderError {
    // The archive, refused rule by rule.
    /// The archive is over the compressed size limit.
    #[error("the archive is {bytes} bytes; at most {max_mib} MiB are accepted")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit, in MiB.
        max_mib: u64,
    },
    /// The archive is not a zip file.
    #[error("the archive is not a zip file")]
    NotZip,
    /// The archive holds too many entries.
    #[error("the archive has {entries} entries; at most {max} are accepted")]
    TooManyEntries {
        /// How many it holds.
        entries: usize,
        /// The limit.
        max: usize,
    },
    /// An entry's header cannot be read.
    #[error("entry {index} of the archive cannot be read: {source}")]
    UnreadableEntry {
        /// Its position in the archive.
        index: usize,
        /// Why.
        source: zip::result::ZipError,
    },
    /// The entries together expand beyond the limit.
    #[error("the archive expands beyond {max_mib} MiB")]
    ExpandsBeyond {
        /// The limit, in MiB.
        max_mib: u64,
    },
    /// One entry expands far more than its compressed size.
    #[error("entry `{path}` expands {ratio} times; at most {max} times is accepted (zip bomb?)")]
    ZipBomb {
        /// The entry.
        path: String,
        /// Its expansion ratio.
        ratio: u64,
        /// The largest ratio accepted.
        max: u64,
    },
    /// An entry cannot be decompressed.
    #[error("entry `{path}` cannot be expanded: {source}")]
    CannotExpand {
        /// The entry.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// An entry holds more bytes than its header says.
    #[error("entry `{path}` is larger than the archive declares")]
    LargerThanDeclared {
        /// The entry.
        path: String,
    },
    /// A link's target is not UTF-8.
    #[error("link `{path}` has a target that is not text")]
    LinkNotText {
        /// The link.
        path: String,
    },
    /// An entry's path is absolute.
    #[error("entry `{name}` has an absolute path; archives hold relative paths only")]
    AbsolutePath {
        /// The entry's name in the archive.
        name: String,
    },
    /// An entry's path climbs with `..`.
    #[error("entry `{name}` contains `..`; archives cannot write outside their folder")]
    ParentPath {
        /// The entry's name in the archive.
        name: String,
    },
    /// An entry would be written through a link that leads outside the code directory.
    #[error("entry `{path}` is under a link that leads outside the code directory")]
    UnderOutsideLink {
        /// The entry.
        path: String,
    },
    /// An entry's directory goes through too many links.
    #[error("entry `{path}` is under too many levels of links")]
    UnderTooManyLinks {
        /// The entry.
        path: String,
    },
    /// A link points to an absolute path.
    #[error("link `{path}` points to the absolute path `{target}`, outside the code directory")]
    LinkToAbsolute {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A link leads above the code directory.
    #[error("link `{path}` points to `{target}`, outside the code directory")]
    LinkOutside {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A link resolves through too many links (a loop, or a chain built to tire the builder).
    #[error("link `{path}` points to `{target}` through too many levels of links")]
    LinkTooDeep {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
    },
    /// An entry is named like a layer whiteout.
    #[error("entry `{path}` is named `.wh.*`, which image layers reserve for deletions")]
    Whiteout {
        /// The entry.
        path: String,
    },

    // The handler.
    /// A Go handler names a directory without `.go` files.
    #[error("no Go package in `{handler}`: the archive has no .go file there")]
    NoGoPackage {
        /// The handler.
        handler: String,
    },
    /// The handler is not `<file>.<function>`.
    #[error("handler `{handler}` is not `<file>.<function>`")]
    HandlerFormat {
        /// The handler.
        handler: String,
    },
    /// The handler's file is not a WebAssembly component for `wasi:http/proxy`, or could not be
    /// compiled.
    #[error("{0}")]
    Component(#[from] nuage_wasm::WasmError),
    /// The handler's file is not in the archive.
    #[error("handler file `{file}` not found in the archive")]
    HandlerFileMissing {
        /// The file looked for.
        file: String,
    },
    /// The handler's file does not define its function.
    #[error("`{path}` does not define the handler function `{function}`")]
    HandlerUndefined {
        /// The file.
        path: String,
        /// The function.
        function: String,
    },

    // Go builds.
    /// A Go archive without `go.mod`.
    #[error("Go archives need a go.mod at their root")]
    NoGoMod,
    /// A `go.mod` without a `module` line.
    #[error("go.mod names no module")]
    NoGoModule,
    /// An entry cannot be written where `go build` reads it.
    #[error("unpacking `{path}`: {source}")]
    GoUnpack {
        /// The entry.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// `go build` refused the code; its first lines of errors.
    #[error("`go build` failed: {output}")]
    GoBuildFailed {
        /// The first lines it printed.
        output: String,
    },
    /// `go build` ran past its deadline.
    #[error("`go build` ran longer than {seconds} s and was stopped")]
    GoTimeout {
        /// The deadline, in seconds.
        seconds: u64,
    },

    // Images and registries.
    /// No wrapper exists for the runtime here.
    #[error("the `{runtime}` runtime cannot be built on this installation")]
    RuntimeNotBuildable {
        /// The runtime.
        runtime: String,
    },
    /// A digest does not parse.
    #[error("digest: {0}")]
    Digest(oci_spec::OciSpecError),
    /// The image's config, manifest, index or layout marker cannot be built or written.
    #[error("image metadata: {0}")]
    Metadata(oci_spec::OciSpecError),
    /// A manifest of the layout cannot be read.
    #[error("reading manifest {digest}: {source}")]
    Manifest {
        /// Its digest.
        digest: String,
        /// Why.
        source: oci_spec::OciSpecError,
    },
    /// A blob cannot be written into the layout.
    #[error("writing blob {digest}: {source}")]
    WriteBlob {
        /// Its hex digest.
        digest: String,
        /// Why.
        source: io::Error,
    },
    /// An aged-out blob cannot be removed.
    #[error("removing blob {name}: {source}")]
    RemoveBlob {
        /// Its file name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// A blob to push cannot be read from the layout.
    #[error("reading blob {digest}: {source}")]
    ReadBlob {
        /// Its digest.
        digest: String,
        /// Why.
        source: io::Error,
    },
    /// The manifest to push is not JSON.
    #[error("reading the manifest: {0}")]
    ManifestJson(serde_json::Error),
    /// The registry refused or did not answer.
    #[error("pushing to the registry {host}: {source}")]
    Push {
        /// The registry.
        host: String,
        /// Why.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// A runtime's base image is not a reference (`builder.base_images`).
    #[error("the base image `{reference}` is not an image reference: {source}")]
    BaseReference {
        /// The reference.
        reference: String,
        /// Why.
        source: oci_client::ParseError,
    },
    /// The registry did not give a runtime's base image.
    #[error("fetching the base image `{reference}`: {source}")]
    PullBase {
        /// The reference.
        reference: String,
        /// Why.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// A runtime's base image cannot be built on.
    #[error("the base image `{reference}` cannot be built on: {why}")]
    BaseUnusable {
        /// The reference.
        reference: String,
        /// Why.
        why: String,
    },
    /// A step of the build failed on this machine (`doing` names it).
    #[error("{doing}: {source}")]
    Io {
        /// The step.
        doing: &'static str,
        /// Why.
        source: io::Error,
    },

    // The job.
    /// The function's archive was never uploaded.
    #[error("no archive was uploaded: GET the upload-url and PUT the zip first")]
    NoArchive,
    /// The object store did not answer.
    #[error("the object store did not answer: {0}")]
    ObjectStore(Box<dyn std::error::Error + Send + Sync>),
    /// The archive could not be read to its end.
    #[error("reading the archive: {0}")]
    ReadArchive(aws_sdk_s3::primitives::ByteStreamError),
    /// The blocking build task did not run to its end.
    #[error("the build task failed: {0}")]
    Task(tokio::task::JoinError),
    /// Every attempt was used up.
    #[error(
        "the build did not finish after {attempts} attempts; deploy again, or contact the operator if it keeps failing"
    )]
    GaveUp {
        /// How many attempts were allowed.
        attempts: i64,
    },
}

impl BuilderError {
    /// Returns what makes the I/O error of the step `doing` a build failure.
    pub(crate) fn io(doing: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { doing, source }
    }

    /// Returns the class of this failure. [`ErrorCode::Unavailable`] marks what may pass on a
    /// later attempt (the object store, the registry, an interrupted task): the worker retries
    /// those jobs and refuses the others, reporting the message.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. }
            | Self::NotZip
            | Self::TooManyEntries { .. }
            | Self::UnreadableEntry { .. }
            | Self::ExpandsBeyond { .. }
            | Self::ZipBomb { .. }
            | Self::CannotExpand { .. }
            | Self::LargerThanDeclared { .. }
            | Self::LinkNotText { .. }
            | Self::AbsolutePath { .. }
            | Self::ParentPath { .. }
            | Self::UnderOutsideLink { .. }
            | Self::UnderTooManyLinks { .. }
            | Self::LinkToAbsolute { .. }
            | Self::LinkOutside { .. }
            | Self::LinkTooDeep { .. }
            | Self::Whiteout { .. }
            | Self::NoGoPackage { .. }
            | Self::HandlerFormat { .. }
            | Self::HandlerFileMissing { .. }
            | Self::HandlerUndefined { .. }
            | Self::Component(_)
            | Self::NoGoMod
            | Self::NoGoModule
            | Self::GoBuildFailed { .. }
            | Self::GoTimeout { .. } => ErrorCode::InvalidArgument,
            Self::RuntimeNotBuildable { .. }
            | Self::NoArchive
            | Self::BaseReference { .. }
            | Self::BaseUnusable { .. } => ErrorCode::FailedPrecondition,
            Self::GoUnpack { .. }
            | Self::Digest(_)
            | Self::Metadata(_)
            | Self::Manifest { .. }
            | Self::WriteBlob { .. }
            | Self::RemoveBlob { .. }
            | Self::Io { .. } => ErrorCode::Internal,
            Self::ReadBlob { .. }
            | Self::ManifestJson(_)
            | Self::Push { .. }
            | Self::PullBase { .. }
            | Self::ObjectStore(_)
            | Self::ReadArchive(_)
            | Self::Task(_) => ErrorCode::Unavailable,
            Self::GaveUp { .. } => ErrorCode::ResourceExhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_pass_is_retried() {
        let refused = [
            BuilderError::NotZip,
            BuilderError::NoArchive,
            BuilderError::RuntimeNotBuildable {
                runtime: "cobol".to_owned(),
            },
            BuilderError::io("writing a layer")(io::Error::other("disk full")),
        ];
        for error in refused {
            assert_ne!(error.code(), ErrorCode::Unavailable, "{error}");
        }
        let store = BuilderError::ObjectStore(Box::new(io::Error::other("connection refused")));
        assert_eq!(store.code(), ErrorCode::Unavailable);
        assert_eq!(store.to_string(), "the object store did not answer: connection refused");
        assert_eq!(
            BuilderError::GaveUp { attempts: 3 }.to_string(),
            "the build did not finish after 3 attempts; deploy again, or contact the operator if it keeps failing"
        );
    }
}
