//! Where a WebAssembly function's precompiled component sits in its image: the builder writes
//! it there, the runner reads it from there for the router.

/// The component's path, relative to the image's root.
pub const COMPONENT_PATH: &str = "opt/nuage/wrapper/component.cwasm";
